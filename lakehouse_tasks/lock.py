"""One deploy at a time per environment: a lock file created atomically.

The lock is ``<state dir>/locks/<env>.lock``, created with ``O_CREAT | O_EXCL`` so that two
processes can never both believe they hold it. It holds JSON naming the holder (host, pid,
user, time, command) so a refusal can say who to ask. A lock left by a process that died on
*this* host is broken automatically (and said so); a lock from another host is never guessed
at: ``invoke lock.release --env E --force`` removes it.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ExitCode, LakehouseError
from .paths import state_dir


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or held) an environment's deploy lock."""

    environment: str
    host: str
    pid: int
    user: str
    time: str  # ISO 8601, UTC
    command: str

    def describe(self) -> str:
        return f"{self.user}@{self.host} pid {self.pid} since {self.time}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "host": self.host,
            "pid": self.pid,
            "user": self.user,
            "time": self.time,
            "command": self.command,
        }


@dataclass(frozen=True)
class LockStatus:
    """What ``lock.status`` reports: the holder, if any, and whether it is still alive."""

    environment: str
    path: Path
    holder: LockInfo | None
    alive: bool | None  # None when the holder is on another host (cannot tell)

    @property
    def state(self) -> str:
        if self.holder is None:
            return "free"
        if self.alive is None:
            return "held (other host)"
        return "held" if self.alive else "stale"

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "path": str(self.path),
            "state": self.state,
            "holder": self.holder.to_dict() if self.holder else None,
        }


class LockHeldError(LakehouseError):
    """Another live process holds the environment's lock (exit 4, docs/EXIT_CODES.md)."""

    def __init__(self, message: str, holder: LockInfo) -> None:
        super().__init__(message, ExitCode.DEPLOY_FAILED)
        self.holder = holder


def lock_path(root: Path, environment: str) -> Path:
    return state_dir(root) / "locks" / f"{environment}.lock"


def _hostname() -> str:
    return socket.gethostname()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid is still a name
        return str(os.getuid())


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 probes, never kills)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(root: Path, environment: str) -> LockInfo | None:
    """The current holder, or ``None`` when the environment is not locked.

    An unreadable or half-written file (a crash between create and write) yields a holder
    with pid 0, which counts as dead, so it is broken like any stale lock.
    """
    path = lock_path(root, environment)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        raw = json.loads(text)
        return LockInfo(
            environment=str(raw.get("environment", environment)),
            host=str(raw["host"]),
            pid=int(raw["pid"]),
            user=str(raw.get("user", "?")),
            time=str(raw.get("time", "?")),
            command=str(raw.get("command", "")),
        )
    except (ValueError, KeyError, TypeError):
        return LockInfo(environment, _hostname(), 0, "?", "?", "unreadable lock file")


def holder_alive(info: LockInfo) -> bool | None:
    """``True``/``False`` for a holder on this host; ``None`` for another host."""
    if info.host != _hostname():
        return None
    return pid_alive(info.pid)


def lock_status(root: Path, environment: str) -> LockStatus:
    holder = read_lock(root, environment)
    return LockStatus(
        environment=environment,
        path=lock_path(root, environment),
        holder=holder,
        alive=holder_alive(holder) if holder else None,
    )


def acquire(
    root: Path,
    environment: str,
    command: str,
    *,
    notify: Callable[[str], None] | None = None,
    pid: int | None = None,
) -> LockInfo:
    """Take the environment's lock or raise :class:`LockHeldError` naming the holder.

    A stale lock (holder on this host, process gone) is removed and the acquisition retried
    once; ``notify`` receives one sentence saying so.
    """
    path = lock_path(root, environment)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = LockInfo(
        environment=environment,
        host=_hostname(),
        pid=pid if pid is not None else os.getpid(),
        user=_user(),
        time=_dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        command=command,
    )
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = read_lock(root, environment)
            if holder is None:  # released between our open and our read
                continue
            if attempt == 0 and holder_alive(holder) is False:
                _remove(path)
                if notify:
                    notify(
                        f"broke the stale lock of {environment} left by {holder.describe()} "
                        "(that process is no longer running)"
                    )
                continue
            raise LockHeldError(
                f"deploy of {environment} is locked by {holder.describe()} "
                f"({holder.command or 'unknown command'}); wait for it to finish or run "
                f"`invoke lock.release --env {environment}`.",
                holder,
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(info.to_dict(), fh)
        return info
    raise LockHeldError(  # pragma: no cover - two races in a row
        f"deploy of {environment} is being locked by another process right now; try again.",
        info,
    )


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def release(root: Path, environment: str, *, force: bool = False) -> LockInfo | None:
    """Remove the lock; return the holder that was removed (``None`` when it was free).

    Without ``force`` only a lock of this process or a dead process on this host is removed;
    a live (or remote) holder raises :class:`LockHeldError` naming ``--force``.
    """
    holder = read_lock(root, environment)
    if holder is None:
        return None
    mine = holder.host == _hostname() and holder.pid == os.getpid()
    if not force and not mine and holder_alive(holder) is not False:
        raise LockHeldError(
            f"the lock of {environment} is held by {holder.describe()}, which may still be "
            f"running; pass --force to `invoke lock.release --env {environment}` to remove it "
            "anyway.",
            holder,
        )
    _remove(lock_path(root, environment))
    return holder


@contextmanager
def environment_lock(
    root: Path,
    environment: str,
    command: str,
    *,
    notify: Callable[[str], None] | None = None,
) -> Iterator[LockInfo]:
    """Hold the environment's lock for the ``with`` block; released even on error."""
    info = acquire(root, environment, command, notify=notify)
    try:
        yield info
    finally:
        current = read_lock(root, environment)
        # Only remove our own lock: someone may have force-released and re-taken it.
        if current is not None and (current.host, current.pid) == (info.host, info.pid):
            _remove(lock_path(root, environment))
