"""Streams of backups and restores: dumps and archives can be far larger than memory.

They flow through a pipe in chunks of :data:`STREAM_CHUNK` bytes, hashed (and compressed) on
the fly. The argv is traced like every other command (:func:`.executor._trace`) and a failure
translated by :func:`.executor.command_failure`; stderr goes to a temporary file so a chatty
command cannot deadlock the pipe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import pipes
from . import executor
from .fifos import open_fifo_reader, open_fifo_writer

STREAM_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StreamResult:
    """What a stream wrote: bytes in the file, their sha256, bytes the command produced."""

    size: int
    sha256: str
    raw_size: int


def external_gzip() -> str | None:
    """The ``gzip`` program when installed: compressing in it runs on another core than the
    reading, hashing and writing here (the in-process zlib did all four on one, at about half
    the throughput of ``tar | gzip -1``; docs/PERFORMANCE.md)."""
    return shutil.which("gzip")


def stream_to_file(
    cmd: Sequence[Any],
    dest: Path,
    *,
    gzip_level: int | None = None,
    compress_argv: Sequence[str] | None = None,
    scrub: Any = None,
    what: str = "",
    on_chunk: Any = None,
    fifo: Path | None = None,
) -> StreamResult:
    """Run ``cmd`` and write its stdout (or what it writes into the FIFO ``fifo``) to
    ``dest`` (gzip-compressed when ``gzip_level`` is set), hashing what is written. Never
    holds more than a few chunks in memory.

    Compression runs in an external ``gzip -<level>`` when there is one (a thread feeds it
    the command's output and counts the raw bytes), else in zlib here; the file is gzip
    either way. ``on_chunk(n)`` is called with the number of raw bytes after each chunk
    (progress). A non-zero exit raises :class:`EngineError` with the command's stderr
    (scrubbed).
    """
    argv = [str(a) for a in cmd]
    executor._trace(argv)
    gzip_path = external_gzip() if gzip_level is not None else None
    compressor = (
        zlib.compressobj(gzip_level, zlib.DEFLATED, 31)
        if gzip_level is not None and gzip_path is None and compress_argv is None
        else None
    )
    # -n: no name or time stamp in the header, as the zlib path wrote it
    gzip_argv = [gzip_path or "gzip", f"-{gzip_level}", "-n", "-c"]
    if compress_argv is not None:  # another external compressor (zstd), fed the same way
        gzip_path = str(compress_argv[0])
        gzip_argv = [str(a) for a in compress_argv]
    digest = hashlib.sha256()
    size = raw = 0
    with (
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as zerr,
        open(dest, "wb") as fh,
    ):
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if fifo is None else subprocess.DEVNULL,
            stderr=err,
        )
        with _reaped_on_error(proc):
            reader = proc.stdout if fifo is None else open_fifo_reader(fifo, proc)
        assert reader is not None
        zproc: subprocess.Popen[bytes] | None = None
        feeder: threading.Thread | None = None
        fed = [0]  # raw bytes the feeder thread gave gzip
        reported = 0
        try:
            source = reader
            if gzip_path is not None:
                zproc = subprocess.Popen(
                    gzip_argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=zerr,
                )
                feeder = threading.Thread(
                    target=_feed, args=(reader, zproc.stdin, fed), name="gzip-feed"
                )
                feeder.start()
                assert zproc.stdout is not None
                source = zproc.stdout
            while True:
                chunk = source.read(STREAM_CHUNK)
                if not chunk:
                    break
                if zproc is None:
                    raw += len(chunk)
                data = compressor.compress(chunk) if compressor else chunk
                if data:
                    fh.write(data)
                    digest.update(data)
                    size += len(data)
                if on_chunk is not None:
                    done = fed[0] if zproc is not None else raw
                    if done > reported:
                        on_chunk(done - reported)
                        reported = done
            if compressor is not None:
                data = compressor.flush()
                fh.write(data)
                digest.update(data)
                size += len(data)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            proc.kill()
            if zproc is not None:
                zproc.kill()
            raise
        finally:
            if feeder is not None:
                feeder.join()
            reader.close()
            if zproc is not None and zproc.stdout is not None:
                zproc.stdout.close()
            proc.wait()
            if zproc is not None:
                zproc.wait()
        rc = proc.wait()
        if rc != 0:
            raise executor.failure_from_file(argv, rc, err, scrub=scrub, what=what)
        if zproc is not None:
            raw = fed[0]
            if on_chunk is not None and raw > reported:
                on_chunk(raw - reported)
            if zproc.returncode != 0:
                raise executor.failure_from_file(
                    gzip_argv, zproc.returncode, zerr, scrub=scrub, what=what
                )
    return StreamResult(size=size, sha256=digest.hexdigest(), raw_size=raw)


def _feed(source: Any, sink: Any, fed: list[int]) -> None:
    """Copy ``source`` into ``sink`` chunk by chunk, counting in ``fed[0]``; close ``sink``
    at the end (a broken pipe means the reader died: its exit code says why)."""
    try:
        while True:
            chunk = source.read(STREAM_CHUNK)
            if not chunk:
                break
            sink.write(chunk)
            fed[0] += len(chunk)
    except (BrokenPipeError, ValueError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.close()


@contextlib.contextmanager
def _reaped_on_error(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Kill ``proc`` and wait for it when the block raises (Ctrl-C included), then re-raise:
    a stream that fails on this side leaves no command running behind it."""
    try:
        yield
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _copy_file(fh: Any, sink: Any, fed: list[int], *, gunzip: bool, on_chunk: Any) -> None:
    """Copy ``fh`` into ``sink`` chunk by chunk (gunzipped on the way when ``gunzip``),
    counting the bytes written in ``fed[0]`` (kept when a write fails: a reader that stopped
    early). ``on_chunk(n)`` gets the bytes read from ``fh`` after each chunk."""
    decompressor = zlib.decompressobj(31) if gunzip else None
    while chunk := fh.read(STREAM_CHUNK):
        data = decompressor.decompress(chunk) if decompressor else chunk
        if data:
            sink.write(data)
            fed[0] += len(data)
        if on_chunk is not None:
            on_chunk(len(chunk))
    if decompressor is not None and (tail := decompressor.flush()):
        sink.write(tail)
        fed[0] += len(tail)


def stream_from_file(
    cmd: Sequence[Any],
    src: Path,
    *,
    gunzip: bool = False,
    decompress_argv: Sequence[str] | None = None,
    scrub: Any = None,
    what: str = "",
    on_chunk: Any = None,
) -> int:
    """Run ``cmd`` with ``src`` (gunzipped on the fly when ``gunzip``) on its stdin; return
    the number of bytes fed. A non-zero exit raises :class:`EngineError` with its stderr.

    With ``decompress_argv`` (``zstd -dc``) that program reads ``src`` and writes straight
    into ``cmd``'s stdin (no copy through this process); the count returned is then the size
    of ``src``."""
    argv = [str(a) for a in cmd]
    executor._trace(argv)
    if decompress_argv is not None:
        return _stream_through(argv, [str(a) for a in decompress_argv], src, scrub, what, on_chunk)
    fed = [0]
    with tempfile.TemporaryFile() as err, open(src, "rb") as fh:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=err, stderr=err)
        assert proc.stdin is not None
        with _reaped_on_error(proc), contextlib.suppress(BrokenPipeError):
            # a broken pipe: the command exited early, its exit code and stderr say why
            _copy_file(fh, proc.stdin, fed, gunzip=gunzip, on_chunk=on_chunk)
            proc.stdin.close()
        rc = proc.wait()
        if rc != 0:
            raise executor.failure_from_file(argv, rc, err, scrub=scrub, what=what)
    return fed[0]


def stream_into_fifo(
    cmd: Sequence[Any],
    fifo: Path,
    src: Path,
    *,
    gunzip: bool = False,
    decompress_argv: Sequence[str] | None = None,
    scrub: Any = None,
    what: str = "",
    on_chunk: Any = None,
) -> int:
    """:func:`stream_from_file` for a ``cmd`` that reads the FIFO ``fifo`` instead of its
    stdin: ``src`` (gunzipped here, or through ``decompress_argv`` writing straight into the
    FIFO) is fed to it once it opens the FIFO. :class:`FifoUnused` when it ends without ever
    opening it (nothing was fed); a failure after that raises :class:`EngineError`, the
    decompressor's own failure named first."""
    argv = [str(a) for a in cmd]
    executor._trace(argv)
    fed = [0]
    unpack: list[str] | None = None
    unpack_rc = 0
    with (
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as zerr,
        open(src, "rb") as fh,
    ):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        with _reaped_on_error(proc):
            sink = open_fifo_writer(fifo, proc)
        with _reaped_on_error(proc), contextlib.suppress(BrokenPipeError), sink:
            # a broken pipe: the command exited early, its exit code and stderr say why
            if decompress_argv is not None:
                unpack = [str(a) for a in decompress_argv]
                executor._trace(unpack)
                unpack_rc = subprocess.run(unpack, stdin=fh, stdout=sink, stderr=zerr).returncode
                fed[0] = src.stat().st_size
                if on_chunk is not None:
                    on_chunk(fed[0])
            else:
                _copy_file(fh, sink, fed, gunzip=gunzip, on_chunk=on_chunk)
        rc = proc.wait()
        if unpack is not None and unpack_rc != 0 and unpack_rc not in pipes.BROKEN_PIPE:
            raise executor.failure_from_file(unpack, unpack_rc, zerr, scrub=scrub, what=what)
        if rc != 0:
            raise executor.failure_from_file(argv, rc, err, scrub=scrub, what=what)
    return fed[0]


def _stream_through(
    argv: list[str], unpack: list[str], src: Path, scrub: Any, what: str, on_chunk: Any
) -> int:
    """``unpack < src | argv`` (:func:`_pipeline`)."""
    executor._trace(unpack)
    with open(src, "rb") as fh:
        _pipeline(unpack, argv, stdin=fh, scrub=scrub, what=what)
    size = src.stat().st_size
    if on_chunk is not None:
        on_chunk(size)
    return size


def _pipeline(
    producer: list[str], consumer: list[str], *, stdin: Any, scrub: Any, what: str
) -> None:
    """``producer | consumer`` without a shell (:func:`lakehouse_tasks.pipes.producing`), both
    exit codes judged: the producer's failure is named first (the consumer then saw a cut
    stream), unless it only died of the pipe the failing consumer closed."""
    with (
        pipes.producing(producer, stdin=stdin) as first,
        tempfile.TemporaryFile() as err,
    ):
        second = subprocess.Popen(consumer, stdin=first.stdout, stdout=err, stderr=err)
        first.stdout.close()  # the consumer holds the pipe now
        try:
            rc = second.wait()
        except BaseException:
            second.kill()
            second.wait()
            raise
        first.wait()
        if first.failed():
            raise executor.command_failure(
                first.argv, first.returncode or 1, first.error_text(), scrub=scrub, what=what
            )
        if rc != 0:
            raise executor.failure_from_file(consumer, rc, err, scrub=scrub, what=what)


def pipe_commands(
    producer: Sequence[Any], consumer: Sequence[Any], *, scrub: Any = None, what: str = ""
) -> None:
    """``producer | consumer`` without a shell (copying one volume into another)."""
    out_argv = [str(a) for a in producer]
    in_argv = [str(a) for a in consumer]
    executor._trace([*out_argv, "|", *in_argv])
    _pipeline(out_argv, in_argv, stdin=subprocess.DEVNULL, scrub=scrub, what=what)
