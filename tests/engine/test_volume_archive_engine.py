"""A volume archive through the FIFO and through the container's stdout is the same archive.

The FIFO is the default with a local engine (docs/BACKUP.md, "The archive's path"); the
stdout stream is what a remote engine, or a container that cannot open the FIFO, gets.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse_tasks.engine import volumes
from tests.conftest import BUSYBOX_STANDIN, unique_project_name

pytestmark = pytest.mark.engine


@pytest.fixture
def filled_volume(standin_images: dict[str, str]) -> Iterator[str]:
    name = unique_project_name("fifo") + "_data"
    subprocess.run(["docker", "volume", "create", name], check=True, capture_output=True)
    try:
        subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "-v", f"{name}:/v",
             "--entrypoint", "sh", BUSYBOX_STANDIN, "-c",
             "mkdir -p /v/a/b && head -c 3m /dev/urandom > /v/a/b/part.bin && "
             "echo hello > /v/top.txt && chown 999:999 /v/top.txt"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield name
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", name], capture_output=True)


def _listing(archive: Path) -> list[str]:
    out = subprocess.run(
        ["tar", "-tvzf", str(archive)], check=True, capture_output=True, text=True
    ).stdout
    return sorted(" ".join(line.split()[:3] + line.split()[5:]) for line in out.splitlines())


def test_fifo_and_stdout_archives_hold_the_same_files(
    filled_volume: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {}
    for mode in ("1", "0"):
        monkeypatch.setenv(volumes.FIFO_ENV, mode)
        dest = tmp_path / f"archive-{mode}.tar.gz"
        results[mode] = volumes.archive_to_file(BUSYBOX_STANDIN, filled_volume, dest, gzip_level=1)
        assert results[mode].raw_size > 3 * 1024 * 1024
    assert results["1"].raw_size == results["0"].raw_size
    assert _listing(tmp_path / "archive-1.tar.gz") == _listing(tmp_path / "archive-0.tar.gz")
    assert "999/999" in " ".join(_listing(tmp_path / "archive-1.tar.gz"))
    assert not list(Path(volumes.tempfile.gettempdir()).glob("lakehouse-archive-*"))


def test_restore_through_the_fifo_and_through_stdin_give_the_same_files(
    filled_volume: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive.tar.gz"
    volumes.archive_to_file(BUSYBOX_STANDIN, filled_volume, archive, gzip_level=1)
    expected = volumes.file_checksums(BUSYBOX_STANDIN, filled_volume)
    assert "a/b/part.bin" in expected
    for mode in ("1", "0"):
        monkeypatch.setenv(volumes.FIFO_ENV, mode)
        target = f"{filled_volume}_restored{mode}"
        subprocess.run(["docker", "volume", "create", target], check=True, capture_output=True)
        try:
            fed = volumes.extract_from_file(BUSYBOX_STANDIN, target, archive, gunzip=True)
            assert fed > 3 * 1024 * 1024
            assert volumes.file_checksums(BUSYBOX_STANDIN, target) == expected
        finally:
            subprocess.run(["docker", "volume", "rm", "-f", target], capture_output=True)
