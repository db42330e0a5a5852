"""FIFOs on this host that a throw-away container writes into or reads from.

A container's stdout and stdin reach ``docker run`` through the daemon's attach stream (15 MB/s
on the reference machine); a FIFO bind-mounted into the container carries the same bytes at
the disk's speed (docs/BACKUP.md, "The archive's path"). Opening a FIFO blocks until the
other end opens it, and the other end may never come (a daemon that does not see this host's
paths), so both openers poll and give up with :class:`FifoUnused` once the process that was
to open the other end has ended.
"""

from __future__ import annotations

import errno
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any


class FifoUnused(Exception):
    """The command ended without ever opening the FIFO it was to write to (a daemon that
    cannot see this host's paths, a mount it refused): the caller streams another way."""


def open_fifo_reader(fifo: Path, proc: subprocess.Popen[bytes], poll_ms: int = 100) -> Any:
    """``fifo`` opened for reading once ``proc`` (or a container it runs) has written to it.

    A plain ``open`` would block for ever if the writer never comes, so the FIFO is opened
    non-blocking and polled: data (or the writer's close) arrives, or ``proc`` ends first and
    :class:`FifoUnused` is raised. Linux reports no hang-up on a FIFO before its first writer.
    """
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while not poller.poll(poll_ms):
            if proc.poll() is not None and not poller.poll(0):
                raise FifoUnused(str(fifo))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def open_fifo_writer(fifo: Path, proc: subprocess.Popen[bytes], poll_s: float = 0.05) -> Any:
    """``fifo`` opened for writing once ``proc`` (or a container it runs) has opened it for
    reading; :class:`FifoUnused` when ``proc`` ends first (a non-blocking open for writing
    fails with ENXIO while the FIFO has no reader, so nothing here blocks for ever)."""
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            if proc.poll() is not None:
                raise FifoUnused(str(fifo)) from None
            time.sleep(poll_s)
            continue
        os.set_blocking(fd, True)
        return os.fdopen(fd, "wb")


__all__ = ["FifoUnused", "open_fifo_reader", "open_fifo_writer"]
