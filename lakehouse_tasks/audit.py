"""The audit log: one JSON line per state-changing task, in ``state_dir/audit.jsonl``.

Every task that changes state (deploy, rollback, teardown, backup, restore, prune, secrets,
schedule, lock release) is decorated with :func:`audited`::

    @lakehouse_task(help={...})
    @audited("deploy")
    def deploy(c, env=None, ...): ...

``audited`` goes *below* ``lakehouse_task`` (it wraps the plain function, so it sees a
``LakehouseError`` before the error boundary turns it into ``invoke.Exit``); put above it, it
wraps the task's body instead and records the same thing. Either way invoke still sees every
flag: the wrapper keeps the signature (``functools.wraps``).

A record holds: time, user, host, environment, task, arguments (secrets masked), result
(``ok`` / ``failed`` with the exit code / ``refused`` / ``interrupted``), duration and the git
commit of the project directory. Writing the record can never make the task fail: a
problem writing it is a warning on stderr.
"""

from __future__ import annotations

import datetime as _dt
import functools
import getpass
import inspect
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from . import paths
from .environment import load_environment
from .errors import ConfigError, ExitCode, LakehouseError
from .masking import MASK, Scrubber
from .paths import project_root, state_dir
from .schema import SECRET_NAME

F = TypeVar("F", bound=Callable[..., Any])

AUDIT_FILE = "audit.jsonl"

#: Arguments that say nothing about what the task did; left out of records.
_NOISE_ARGUMENTS = frozenset({"c", "ctx", "json_"})


@dataclass(frozen=True)
class AuditRecord:
    """One state-changing task run."""

    time: str  # ISO 8601, UTC, when the task started
    user: str
    host: str
    environment: str
    task: str
    arguments: Mapping[str, Any]
    result: str  # ok | failed | refused | interrupted
    exit_code: int
    duration_s: float
    commit: str  # git commit of the project directory ("" outside git); "+dirty" if modified
    error: str = ""  # the one-line message of a failure (secrets scrubbed)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "user": self.user,
            "host": self.host,
            "environment": self.environment,
            "task": self.task,
            "arguments": dict(self.arguments),
            "result": self.result,
            "exit_code": self.exit_code,
            "duration_s": self.duration_s,
            "commit": self.commit,
            "error": self.error,
            **({"extra": dict(self.extra)} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        return cls(
            time=str(data.get("time", "")),
            user=str(data.get("user", "")),
            host=str(data.get("host", "")),
            environment=str(data.get("environment", "")),
            task=str(data.get("task", "")),
            arguments=dict(data.get("arguments") or {}),
            result=str(data.get("result", "")),
            exit_code=int(data.get("exit_code") or 0),
            duration_s=float(data.get("duration_s") or 0.0),
            commit=str(data.get("commit", "")),
            error=str(data.get("error", "")),
            extra=dict(data.get("extra") or {}),
        )

    @property
    def started(self) -> _dt.datetime:
        return _dt.datetime.fromisoformat(self.time)


# ---- masking ------------------------------------------------------------------------------
class _Secrets:
    """What counts as secret for one environment: names by the schema, values by the env."""

    def __init__(self, is_secret: Callable[[str], bool], values: Iterable[str]) -> None:
        self.is_secret = is_secret
        self.scrub = Scrubber(values)


def _secrets_of(environment: str, env_files: Iterable[str]) -> _Secrets:
    """The environment's secrets; names only (by pattern) when it cannot be loaded."""
    try:
        env = load_environment(environment, env_files=env_files, strict=False)
    except (LakehouseError, OSError):
        return _Secrets(lambda name: bool(SECRET_NAME.search(name.upper())), ())
    return _Secrets(
        lambda name: env.is_secret(name.upper()) or bool(SECRET_NAME.search(name.upper())),
        env.secret_values,
    )


def mask_arguments(arguments: Mapping[str, Any], secrets: _Secrets) -> dict[str, Any]:
    """The arguments with every secret masked: by the argument's name (``password=...``) or
    by its value (a value that is, or contains, one of the environment's secrets)."""

    def mask(name: str, value: Any) -> Any:
        if value in (None, "", False, [], ()):
            return value
        if secrets.is_secret(name):
            return MASK
        if isinstance(value, str):
            # NAME=value arguments (e.g. --set KEY=...) are masked by NAME too.
            key, sep, _rest = value.partition("=")
            if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) and secrets.is_secret(key):
                return f"{key}={MASK}"
            return secrets.scrub(value)
        if isinstance(value, (list, tuple)):
            return [mask(name, v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): mask(str(k), v) for k, v in value.items()}
        if isinstance(value, (bool, int, float)):
            return value
        return secrets.scrub(str(value))

    return {name: mask(name, value) for name, value in arguments.items()}


# ---- context ------------------------------------------------------------------------------
def git_commit(root: Path) -> str:
    """``HEAD`` of the project directory, ``+dirty`` when tracked files changed; "" if none."""
    return paths.git_commit(root, mark_dirty=True) or ""


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def audit_path(root: Path | None = None) -> Path:
    return state_dir(root or project_root()) / AUDIT_FILE


def append_record(record: AuditRecord, path: Path) -> None:
    """Append one line (one ``write`` on an ``O_APPEND`` file: concurrent tasks do not
    interleave). The file is private (0600): arguments can name hosts and paths."""
    line = json.dumps(record.to_dict(), sort_keys=False, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


# ---- the decorator ------------------------------------------------------------------------
def _outcome(exc: BaseException | None) -> tuple[str, int, str]:
    """(result, exit code, message) of a task that ended with ``exc`` (None: success)."""
    from invoke import Exit

    if exc is None:
        return "ok", 0, ""
    if isinstance(exc, LakehouseError):
        result = "refused" if exc.exit_code == ExitCode.REFUSED else "failed"
        return result, exc.exit_code, exc.message
    if isinstance(exc, Exit):
        code = int(exc.code or 0)
        if code == 0:
            return "ok", 0, ""
        result = "refused" if code == ExitCode.REFUSED else "failed"
        if code == ExitCode.INTERRUPTED:
            result = "interrupted"
        return result, code, str(exc.message or "")
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", int(ExitCode.INTERRUPTED), "interrupted"
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else 1
        return ("ok" if code == 0 else "failed"), code, ""
    return "failed", 1, f"{type(exc).__name__}: {exc}"


def _bound_arguments(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
    except TypeError:
        return {k: v for k, v in kwargs.items()}
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in _NOISE_ARGUMENTS}


def _environment_name(arguments: Mapping[str, Any]) -> str:
    value = arguments.get("env")
    return str(value or os.environ.get("LAKEHOUSE_ENV") or "dev")


def record_run(
    task: str,
    arguments: Mapping[str, Any],
    *,
    started: float,
    started_at: _dt.datetime,
    exc: BaseException | None,
    root: Path | None = None,
) -> AuditRecord | None:
    """Build, mask and append the record of one finished run; ``None`` if it could not be
    written (a warning on stderr says why; the task's own outcome is never changed)."""
    try:
        root = root or project_root()
        environment = _environment_name(arguments)
        env_files = [str(f) for f in (arguments.get("env_file") or []) if f]
        secrets = _secrets_of(environment, env_files)
        result, code, message = _outcome(exc)
        record = AuditRecord(
            time=started_at.isoformat(timespec="seconds"),
            user=current_user(),
            host=socket.gethostname(),
            environment=environment,
            task=task,
            arguments=mask_arguments(arguments, secrets),
            result=result,
            exit_code=code,
            duration_s=round(time.monotonic() - started, 3),
            commit=git_commit(root),
            error=secrets.scrub(message),
        )
        append_record(record, audit_path(root))
        return record
    except (LakehouseError, OSError) as problem:
        print(f"warning: the audit log could not be written: {problem}", file=sys.stderr)
        return None


def audited(task: str) -> Callable[[F], F]:
    """Record every run of the decorated task in the audit log (see the module docstring).

    Works on a plain task function (below ``@lakehouse_task``) and on an ``invoke.Task``
    (above it). The task's result and exceptions pass through unchanged. A run with
    ``dry_run`` set (``deploy --dry-run``) changes nothing and is not recorded.
    """
    from invoke import Task

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            arguments = _bound_arguments(func, args, kwargs)
            if arguments.get("dry_run"):
                # A dry run changes nothing: it is no deploy, neither a successful nor a
                # failed one, and the audit log holds state changes only.
                return func(*args, **kwargs)
            started = time.monotonic()
            started_at = _dt.datetime.now(_dt.UTC)
            try:
                value = func(*args, **kwargs)
            except BaseException as exc:
                record_run(task, arguments, started=started, started_at=started_at, exc=exc)
                raise
            record_run(task, arguments, started=started, started_at=started_at, exc=None)
            return value

        wrapper.__audited__ = task  # type: ignore[attr-defined]
        return wrapper

    def decorate(func: F) -> F:
        if isinstance(func, Task):
            func.body = wrap(func.body)
            return func
        return wrap(func)  # type: ignore[return-value]

    return decorate


# ---- reading ------------------------------------------------------------------------------
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, *, now: _dt.datetime | None = None) -> _dt.datetime | None:
    """A point in time from ``24h`` / ``7d`` / ``30m`` or a date ``2026-11-01`` (UTC) or an
    ISO date-time. "" means no limit. A ConfigError names the accepted forms."""
    text = (text or "").strip()
    if not text:
        return None
    now = now or _dt.datetime.now(_dt.UTC)
    match = _RELATIVE.match(text)
    if match:
        return now - _dt.timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is neither a duration (30m, 24h, 7d) nor a date (2026-11-01, "
            "2026-11-01T08:00:00+00:00); use one of those forms."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment


def read_records(
    path: Path,
    *,
    environment: str | None = None,
    task: str | None = None,
    since: _dt.datetime | None = None,
) -> Iterator[AuditRecord]:
    """The records of the log, oldest first, filtered. A damaged line (a crash mid-write,
    a hand edit) is skipped rather than hiding every other record."""
    if not path.exists():
        return
    with path.open() as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                record = AuditRecord.from_dict(json.loads(line))
                started = record.started
            except (ValueError, TypeError):
                continue
            if started.tzinfo is None:
                started = started.replace(tzinfo=_dt.UTC)
            if environment and record.environment != environment:
                continue
            if task and record.task != task and not record.task.startswith(task + "."):
                continue
            if since and started < since:
                continue
            yield record
