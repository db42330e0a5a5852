"""A program whose output another reads: the one way the tool runs ``a | b`` without a shell.

Three places needed it and had a copy each: a compressed archive decompressed into a command
(``zstd -dc < file | docker exec -i ...``), one volume copied into another (``tar -c | tar
-x`` in two throw-away containers) and an archive read as a tar stream by the tool itself
(``zstd -dc < file`` into :mod:`tarfile`). :func:`producing` starts the program with its stdout
a pipe and its stderr kept aside, and on leaving closes the pipe, kills it if the reader
failed, and waits for it; :meth:`Producer.failed` judges its exit afterwards, forgiving the
broken pipe of a reader that stopped early on purpose. The engine's streams translate a
failure into the engine's error; ``compress`` into ``OSError``.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

#: Exit statuses of a program stopped by a closed pipe (SIGPIPE: Popen's -13, a shell's 141).
BROKEN_PIPE = (-13, 141)


@dataclass
class Producer:
    """A running program writing into a pipe; ``stdout`` is the reading end."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]  # a temporary file while it runs
    _error: str | None = None  # its stderr, kept once it is waited for

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def failed(self) -> bool:
        """It exited non-zero for a reason of its own (a closed pipe is the reader's doing)."""
        return self.returncode not in (0, None) and self.returncode not in BROKEN_PIPE

    def wait(self) -> int:
        """Close the reading end (a reader still at it stops the program with a broken
        pipe), wait for the program and keep its stderr."""
        with contextlib.suppress(OSError):
            self.stdout.close()
        rc = self.proc.wait()
        if self._error is None:
            self.stderr.seek(0)
            self._error = self.stderr.read().decode(errors="replace").strip()
        return rc

    def error_text(self) -> str:
        """Its stderr (after :meth:`wait`, which leaving :func:`producing` does)."""
        return self._error if self._error is not None else ""


@contextlib.contextmanager
def producing(argv: Sequence[Any], *, stdin: Any = subprocess.DEVNULL) -> Iterator[Producer]:
    """``argv`` running with ``stdin`` (a file, or nothing) and its stdout a pipe.

    Hand ``producer.stdout`` to the reader (a process's stdin, :mod:`tarfile`); on leaving, the
    pipe is closed and the program waited for (killed first when the block raised)."""
    cmd = [str(a) for a in argv]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=err)
        producer = Producer(cmd, proc, err)
        try:
            yield producer
        except BaseException:
            proc.kill()
            raise
        finally:
            producer.wait()


__all__ = ["BROKEN_PIPE", "Producer", "producing"]
