"""A stream read from a FIFO its command writes to (the archive path of a local engine)."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lakehouse_tasks.engine import fifos, streams, volumes
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
    with pytest.raises(fifos.FifoUnused):
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
        ({"DOCKER_CONTEXT": "builder"}, False),
        ({volumes.FIFO_ENV: "0"}, False),
    ],
)
def test_the_fifo_is_used_only_with_a_local_engine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, environ: dict[str, str], usable: bool
) -> None:
    monkeypatch.setenv(
        "DOCKER_CONFIG", str(tmp_path)
    )  # no context chosen with `docker context use`
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.delenv(volumes.FIFO_ENV, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert volumes.fifo_usable() is usable


# ---- the other way: a command that reads the FIFO (a restore's tar -xf) ----
def test_the_file_is_fed_into_the_fifo_the_command_reads(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    payload = os.urandom(2 * streams.STREAM_CHUNK + 5)
    src, out = tmp_path / "src", tmp_path / "out"
    src.write_bytes(payload)
    fed = streams.stream_into_fifo(["sh", "-c", f"cat {fifo} > {out}"], fifo, src)
    assert fed == len(payload)
    assert out.read_bytes() == payload


def test_a_gzip_file_is_unpacked_into_the_fifo(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    src, out = tmp_path / "src.gz", tmp_path / "out"
    src.write_bytes(gzip.compress(b"hello " * 1000))
    streams.stream_into_fifo(["sh", "-c", f"cat {fifo} > {out}"], fifo, src, gunzip=True)
    assert out.read_bytes() == b"hello " * 1000


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd program")
def test_a_decompressor_writes_straight_into_the_fifo_and_its_failure_is_named(
    tmp_path: Path,
) -> None:
    fifo = _fifo(tmp_path)
    src, out = tmp_path / "src.zst", tmp_path / "out"
    subprocess.run(["zstd", "-q", "-o", str(src)], input=b"data " * 500, check=True)
    streams.stream_into_fifo(
        ["sh", "-c", f"cat {fifo} > {out}"], fifo, src, decompress_argv=["zstd", "-dc"]
    )
    assert out.read_bytes() == b"data " * 500
    src.write_bytes(b"not zstd at all")
    with pytest.raises(EngineError) as failed:
        streams.stream_into_fifo(
            ["sh", "-c", f"cat {fifo} > /dev/null"], fifo, src, decompress_argv=["zstd", "-dc"]
        )
    assert "zstd" in " ".join(failed.value.command)


def test_a_reader_that_never_opens_the_fifo_is_reported_and_nothing_is_fed(
    tmp_path: Path,
) -> None:
    fifo = _fifo(tmp_path)
    (tmp_path / "src").write_bytes(b"x")
    with pytest.raises(fifos.FifoUnused):
        streams.stream_into_fifo(["sh", "-c", "exit 4"], fifo, tmp_path / "src")


def test_a_reader_that_stops_early_and_fails_fails_the_stream(tmp_path: Path) -> None:
    fifo = _fifo(tmp_path)
    (tmp_path / "src").write_bytes(os.urandom(4 * streams.STREAM_CHUNK))
    with pytest.raises(EngineError):
        streams.stream_into_fifo(
            ["sh", "-c", f"head -c 10 {fifo} > /dev/null; echo 'tar: bad header' >&2; exit 2"],
            fifo,
            tmp_path / "src",
        )
