"""A stream read from a FIFO its command writes to (the archive path of a local engine)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from lakehouse_tasks.engine import streams, volumes
from lakehouse_tasks.errors import EngineError


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "out.tar"
    os.mkfifo(fifo, 0o600)
    return fifo


def test_what_the_command_writes_into_the_fifo_lands_in_the_file_hashed(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    payload = os.urandom(3 * streams.STREAM_CHUNK + 17)
    (tmp_path / "src").write_bytes(payload)
    dest = tmp_path / "copy"
    result = streams.stream_to_file(
        ["sh", "-c", f"echo noise; cat {tmp_path / 'src'} > {fifo}"], dest, fifo=fifo
    )
    assert dest.read_bytes() == payload
    assert result.raw_size == result.size == len(payload)
    assert result.sha256 == hashlib.sha256(payload).hexdigest()


def test_a_command_that_never_opens_the_fifo_is_reported_not_waited_for(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    with pytest.raises(streams.FifoUnused):
        streams.stream_to_file(["sh", "-c", "exit 3"], tmp_path / "copy", fifo=fifo)


def test_a_command_that_fails_after_writing_fails_the_stream(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    with pytest.raises(EngineError):
        streams.stream_to_file(
            ["sh", "-c", f"echo part > {fifo}; echo 'tar: read error' >&2; exit 2"],
            tmp_path / "copy",
            fifo=fifo,
        )


def test_the_fifo_feeds_an_external_compressor(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    dest = tmp_path / "copy.gz"
    streams.stream_to_file(["sh", "-c", f"printf hello > {fifo}"], dest, gzip_level=1, fifo=fifo)
    assert subprocess.run(["gzip", "-dc", str(dest)], capture_output=True).stdout == b"hello"


@pytest.mark.parametrize(
    ("environ", "usable"),
    [
        ({}, True),
        ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, True),
        ({"DOCKER_HOST": "tcp://10.0.0.5:2376"}, False),
        ({"DOCKER_HOST": "ssh://ops@builder"}, False),
        ({volumes.FIFO_ENV: "0"}, False),
    ],
)
def test_the_fifo_is_used_only_with_a_local_engine(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], usable: bool
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv(volumes.FIFO_ENV, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert volumes.fifo_usable() is usable
