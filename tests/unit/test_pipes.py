"""``a | b`` without a shell, one helper for the engine's streams and the archive reader: the
failing program is the one named, and a reader that stops early is no failure."""

from __future__ import annotations

import sys
import tarfile

import pytest

from lakehouse_tasks.engine.streams import pipe_commands
from lakehouse_tasks.errors import EngineError
from lakehouse_tasks.pipes import producing

PY = sys.executable


def test_a_failing_producer_is_named_not_the_consumer_that_saw_a_cut_stream() -> None:
    producer = [PY, "-c", "import sys; sys.stderr.write('disk on fire'); sys.exit(3)"]
    consumer = [PY, "-c", "import sys; sys.exit(0 if sys.stdin.buffer.read() else 1)"]
    with pytest.raises(EngineError, match="disk on fire") as err:
        pipe_commands(producer, consumer, what="copy of volume v")
    assert "copy of volume v" in str(err.value)


def test_a_failing_consumer_is_named_when_the_producer_only_lost_its_pipe() -> None:
    producer = ["yes"]  # dies of SIGPIPE once the consumer is gone, as tar and zstd do
    consumer = [PY, "-c", "import sys; sys.stderr.write('no space left'); sys.exit(2)"]
    with pytest.raises(EngineError, match="no space left"):
        pipe_commands(producer, consumer, what="copy of volume v")


def test_a_reader_that_stops_early_is_no_failure() -> None:
    with producing(["yes", "x"]) as running:
        assert running.stdout.read(4) == b"x\nx\n"
    assert not running.failed()


def test_an_archive_read_through_a_program_as_a_tar_stream(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "a.txt").write_text("hello")
    archive = root / "a.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root / "a.txt", arcname="a.txt")
    with (
        open(archive, "rb") as fh,
        producing(["cat"], stdin=fh) as cat,
        tarfile.open(fileobj=cat.stdout, mode="r|") as tar,
    ):
        assert [m.name for m in tar] == ["a.txt"]
    assert not cat.failed()
