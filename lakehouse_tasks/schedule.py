"""Scheduled backups: install, list and remove them, run them, and notice a missed one.

A schedule runs ``lakehouse backup.scheduled-run --env E`` once a day at ``--at`` (02:00 by
default). That one task takes a backup, prunes by the environment's retention settings,
records the run in ``<state dir>/schedule-<env>.json`` and reports the outcome as an event
(BACKUP_SUCCEEDED / BACKUP_FAILED), so an alert plugin sees a failed nightly backup.

Where it is installed:

- **systemd** when PID 1 is systemd and ``systemctl`` answers: a ``<project>-backup.service``
  (``Type=oneshot``) and a ``<project>-backup.timer`` (``Persistent=true``: a run missed while
  the host was off happens at the next boot), in ``/etc/systemd/system`` as root, else in
  ``~/.config/systemd/user`` driven by ``systemctl --user``.
- **cron** otherwise: one entry in the *user's* crontab (``crontab -l`` / ``crontab -``) under a
  marker comment naming the compose project, so root and non-root installs work the same way
  and ``--remove`` finds exactly its own entry. ``LAKEHOUSE_CRONTAB_FILE`` replaces the
  crontab by a plain file in the same format (tests, and hosts whose cron reads a file).

A schedule is *missed* when the environment's ``BACKUP_SCHEDULE`` is ``daily`` and its last
successful backup is older than a day plus an hour of grace; ``health`` warns about it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .environment import Environment
from .errors import ConfigError, ExitCode, LakehouseError
from .events import Event, EventKind
from .paths import state_dir, write_atomic

DEFAULT_AT = "02:00"
#: How often each ``BACKUP_SCHEDULE`` value runs (``manual`` never does).
PERIODS: dict[str, _dt.timedelta] = {"daily": _dt.timedelta(days=1)}
#: How late a scheduled backup may be before ``health`` calls it missed.
GRACE = _dt.timedelta(hours=1)
CRONTAB_FILE_ENV = "LAKEHOUSE_CRONTAB_FILE"
SYSTEMD_DIR_ENV = "LAKEHOUSE_SYSTEMD_DIR"
MARKER = "# lakehouse-ops backup schedule"
PLATFORMS = ("systemd", "cron")


# ---- what to run --------------------------------------------------------------------------
@dataclass(frozen=True)
class ScheduleSpec:
    """One environment's scheduled backup: when, what, and under which name."""

    environment: str
    project_name: str
    root: Path
    hour: int
    minute: int
    argv: tuple[str, ...]
    variables: tuple[tuple[str, str], ...]  # exported before the command runs

    @property
    def at(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"

    @property
    def unit_name(self) -> str:
        return f"{self.project_name}-backup"

    @property
    def shell_line(self) -> str:
        """The command as one shell line (``cd`` to the project, variables, argv)."""
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.variables)
        return f"cd {shlex.quote(str(self.root))} && {env} {shlex.join(self.argv)}"


def parse_at(text: str) -> tuple[int, int]:
    """``(hour, minute)`` from ``HH:MM`` (24-hour clock, local time of the host)."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text or "")
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ConfigError(f"--at takes a time of day like 02:00 (24-hour clock), not {text!r}.")
    return int(m.group(1)), int(m.group(2))


def lakehouse_executable() -> str:
    """The ``lakehouse`` console script of the running installation (its venv's ``bin``)."""
    beside = Path(sys.executable).parent / "lakehouse"
    if beside.exists():
        return str(beside)
    found = shutil.which("lakehouse")
    if found:
        return found
    raise ConfigError(
        "The lakehouse command is not installed beside this Python; run scripts/setup first "
        "so the schedule has a command to run."
    )


def build_spec(
    env: Environment,
    *,
    at: str = DEFAULT_AT,
    rehearsal: bool = False,
    env_files: Sequence[str] = (),
    executable: str | None = None,
    drill: bool = False,
) -> ScheduleSpec:
    """The schedule of ``env``: ``lakehouse backup.scheduled-run --env <name>`` at ``at``
    (with ``drill``: ``--drill``, a restore drill of each new backup)."""
    hour, minute = parse_at(at)
    argv = [executable or lakehouse_executable(), "backup.scheduled-run", "--env", env.name]
    if rehearsal:
        argv.append("--rehearsal")
    if drill:
        argv.append("--drill")
    for path in env_files:
        argv += ["--env-file", str(Path(path).expanduser().absolute())]
    variables = [("LAKEHOUSE_HOME", str(env.root))]
    # A state directory chosen at install time must be the one the scheduled run records in,
    # or health would never see the run.
    if os.environ.get("LAKEHOUSE_STATE_DIR"):
        variables.append(("LAKEHOUSE_STATE_DIR", str(state_dir(env.root))))
    return ScheduleSpec(
        environment=env.name,
        project_name=env.project_name,
        root=env.root,
        hour=hour,
        minute=minute,
        argv=tuple(argv),
        variables=tuple(variables),
    )


def check_schedule_wanted(env: Environment, *, force: bool) -> None:
    """Refuse (exit 2) to schedule an environment whose ``BACKUP_SCHEDULE`` is not ``daily``."""
    schedule = (env.get("BACKUP_SCHEDULE") or "manual").lower()
    if schedule in PERIODS or force:
        return
    raise ConfigError(
        f"Environment {env.name!r} has BACKUP_SCHEDULE={schedule}, so it gets no scheduled "
        f"backup; set BACKUP_SCHEDULE=daily in env/{env.name}.local.env or pass --force."
    )


# ---- rendering ----------------------------------------------------------------------------
def render_systemd_units(spec: ScheduleSpec) -> dict[str, str]:
    """``{file name: text}`` of the service and timer units of ``spec``."""
    env_lines = "".join(f'Environment="{k}={v}"\n' for k, v in spec.variables)
    service = (
        f"{MARKER}: project={spec.project_name} env={spec.environment} at={spec.at}\n"
        "[Unit]\n"
        f"Description=lakehouse-ops scheduled backup of {spec.environment} "
        f"({spec.project_name})\n"
        "Wants=network-online.target\n"
        "After=network-online.target docker.service\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={spec.root}\n"
        f"{env_lines}"
        f"ExecStart={shlex.join(spec.argv)}\n"
    )
    timer = (
        f"{MARKER}: project={spec.project_name} env={spec.environment} at={spec.at}\n"
        "[Unit]\n"
        f"Description=Daily lakehouse-ops backup of {spec.environment} at {spec.at}\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar=*-*-* {spec.at}:00\n"
        "Persistent=true\n"
        f"Unit={spec.unit_name}.service\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return {f"{spec.unit_name}.service": service, f"{spec.unit_name}.timer": timer}


def _marker(spec: ScheduleSpec) -> str:
    return f"{MARKER}: project={spec.project_name} env={spec.environment} at={spec.at}"


def render_cron_entry(spec: ScheduleSpec, log_file: Path | None = None) -> str:
    """The marker comment and the crontab line of ``spec`` (cron's ``%`` escaped)."""
    line = spec.shell_line
    if log_file is not None:
        line += f" >> {shlex.quote(str(log_file))} 2>&1"
    return f"{_marker(spec)}\n{spec.minute} {spec.hour} * * * {line.replace('%', chr(92) + '%')}\n"


_MARKER_RE = re.compile(
    re.escape(MARKER) + r": project=(?P<project>\S+) env=(?P<env>\S+) at=(?P<at>\d\d:\d\d)"
)


# ---- installed schedules ------------------------------------------------------------------
@dataclass(frozen=True)
class InstalledSchedule:
    """A schedule found on this host."""

    environment: str
    project_name: str
    platform: str  # systemd | cron
    at: str
    command: str
    location: str  # crontab, a crontab file, or the timer unit's path

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "project": self.project_name,
            "platform": self.platform,
            "at": self.at,
            "command": self.command,
            "location": self.location,
        }


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str], *, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), input=input, capture_output=True, text=True, check=False)


class CronTable:
    """The user's crontab (``crontab -l`` / ``crontab -``), or the file ``LAKEHOUSE_CRONTAB_FILE``
    names."""

    def __init__(self, path: Path | None = None, runner: Runner = _run) -> None:
        if path is None and os.environ.get(CRONTAB_FILE_ENV):
            path = Path(os.environ[CRONTAB_FILE_ENV])
        self.path = path
        self.runner = runner

    @property
    def location(self) -> str:
        return str(self.path) if self.path else "crontab"

    def available(self) -> bool:
        return self.path is not None or shutil.which("crontab") is not None

    def read(self) -> str:
        if self.path is not None:
            return self.path.read_text() if self.path.exists() else ""
        if shutil.which("crontab") is None:
            raise ConfigError(
                "Neither systemd nor cron is available here: install cron (the `cron` package "
                f"on Debian) or set {CRONTAB_FILE_ENV} to the crontab file your scheduler reads."
            )
        proc = self.runner(["crontab", "-l"])
        if proc.returncode != 0:
            if "no crontab" in (proc.stderr or "").lower():
                return ""
            raise LakehouseError(
                f"crontab -l failed: {(proc.stderr or '').strip()}; check that cron lets this "
                "user have a crontab (/etc/cron.allow).",
                ExitCode.BAD_INPUT,
            )
        return proc.stdout

    def write(self, text: str) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(text)
            return
        proc = self.runner(["crontab", "-"], input=text)
        if proc.returncode != 0:
            raise LakehouseError(
                f"crontab - failed: {(proc.stderr or '').strip()}; check that cron lets this "
                "user have a crontab (/etc/cron.allow).",
                ExitCode.BAD_INPUT,
            )

    def entries(self) -> list[InstalledSchedule]:
        found: list[InstalledSchedule] = []
        lines = self.read().splitlines()
        for i, line in enumerate(lines):
            m = _MARKER_RE.match(line.strip())
            if m:
                command = lines[i + 1].split(None, 5)[-1] if i + 1 < len(lines) else ""
                found.append(
                    InstalledSchedule(
                        m["env"], m["project"], "cron", m["at"], command, self.location
                    )
                )
        return found

    def without(self, project_name: str) -> tuple[str, bool]:
        """The crontab without the entry of ``project_name``, and whether there was one."""
        out: list[str] = []
        removed = False
        skip_next = False
        for line in self.read().splitlines():
            if skip_next:
                skip_next = False
                continue
            m = _MARKER_RE.match(line.strip())
            if m and m["project"] == project_name:
                removed = skip_next = True
                continue
            out.append(line)
        return ("\n".join(out) + "\n" if out else ""), removed

    def install(self, spec: ScheduleSpec, log_file: Path | None = None) -> InstalledSchedule:
        rest, _ = self.without(spec.project_name)
        self.write(rest + render_cron_entry(spec, log_file))
        return InstalledSchedule(
            spec.environment, spec.project_name, "cron", spec.at, spec.shell_line, self.location
        )

    def remove(self, project_name: str) -> bool:
        rest, removed = self.without(project_name)
        if removed:
            self.write(rest)
        return removed


class SystemdTimers:
    """Timer and service units in the system (root) or user unit directory."""

    def __init__(
        self, unit_dir: Path | None = None, *, user: bool | None = None, runner: Runner = _run
    ) -> None:
        self.user = (os.geteuid() != 0) if user is None else user
        if unit_dir is None:
            explicit = os.environ.get(SYSTEMD_DIR_ENV)
            if explicit:
                unit_dir = Path(explicit)
            elif self.user:
                unit_dir = Path.home() / ".config" / "systemd" / "user"
            else:
                unit_dir = Path("/etc/systemd/system")
        self.unit_dir = unit_dir
        self.runner = runner

    def _systemctl(self, *args: str) -> None:
        argv = ["systemctl", *(["--user"] if self.user else []), *args]
        proc = self.runner(argv)
        if proc.returncode != 0:
            detail = " ".join((proc.stderr or proc.stdout or "").split())
            raise LakehouseError(
                f"{' '.join(argv)} failed: {detail}; check "
                "`systemctl status` (a user timer also needs `loginctl enable-linger`).",
                ExitCode.BAD_INPUT,
            )

    def install(self, spec: ScheduleSpec) -> InstalledSchedule:
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        units = render_systemd_units(spec)
        for name, text in units.items():
            (self.unit_dir / name).write_text(text)
        try:
            self._systemctl("daemon-reload")
            self._systemctl("enable", "--now", f"{spec.unit_name}.timer")
        except LakehouseError:
            # A timer systemd did not accept must not be left behind looking installed.
            for name in units:
                (self.unit_dir / name).unlink(missing_ok=True)
            raise
        return InstalledSchedule(
            spec.environment,
            spec.project_name,
            "systemd",
            spec.at,
            shlex.join(spec.argv),
            str(self.unit_dir / f"{spec.unit_name}.timer"),
        )

    def remove(self, project_name: str) -> bool:
        unit = f"{project_name}-backup"
        timer = self.unit_dir / f"{unit}.timer"
        if not timer.exists():
            return False
        self._systemctl("disable", "--now", f"{unit}.timer")
        for suffix in (".timer", ".service"):
            (self.unit_dir / f"{unit}{suffix}").unlink(missing_ok=True)
        self._systemctl("daemon-reload")
        return True

    def entries(self) -> list[InstalledSchedule]:
        found: list[InstalledSchedule] = []
        if not self.unit_dir.is_dir():
            return found
        for timer in sorted(self.unit_dir.glob("*-backup.timer")):
            first = timer.read_text().splitlines()[:1]
            m = _MARKER_RE.match(first[0]) if first else None
            if not m:
                continue
            service = timer.with_suffix(".service")
            command = ""
            if service.exists():
                for line in service.read_text().splitlines():
                    if line.startswith("ExecStart="):
                        command = line.partition("=")[2]
            found.append(
                InstalledSchedule(m["env"], m["project"], "systemd", m["at"], command, str(timer))
            )
        return found


def systemd_is_init(runner: Runner = _run) -> bool:
    """PID 1 is systemd and ``systemctl`` answers (not in most containers)."""
    try:
        comm = Path("/proc/1/comm").read_text().strip()
    except OSError:
        return False
    if comm != "systemd" or shutil.which("systemctl") is None:
        return False
    state = runner(["systemctl", "is-system-running"]).stdout.strip()
    return state in {"running", "degraded", "starting", "initializing", "maintenance"}


def choose_platform(via: str | None = None, runner: Runner = _run) -> str:
    """``systemd`` or ``cron``: as asked, cron when ``LAKEHOUSE_CRONTAB_FILE`` is set, systemd
    when it runs as init, else cron."""
    if via and via != "auto":
        if via not in PLATFORMS:
            raise ConfigError(f"--via takes auto, systemd or cron, not {via!r}.")
        return via
    if os.environ.get(CRONTAB_FILE_ENV):
        return "cron"
    return "systemd" if systemd_is_init(runner) else "cron"


def install_schedule(
    spec: ScheduleSpec, *, platform: str, log_file: Path | None = None
) -> InstalledSchedule:
    """Install ``spec`` (replacing a previous schedule of the same project there)."""
    if platform == "systemd":
        return SystemdTimers().install(spec)
    return CronTable().install(spec, log_file)


def remove_schedule(project_name: str) -> list[str]:
    """Remove the schedule of ``project_name`` wherever it is; the platforms it was found on."""
    removed: list[str] = []
    timers = SystemdTimers()
    if timers.unit_dir.is_dir() and timers.remove(project_name):
        removed.append("systemd")
    cron = CronTable()
    if cron.available() and cron.remove(project_name):
        removed.append("cron")
    return removed


def list_schedules() -> list[InstalledSchedule]:
    """Every schedule installed by this tool for this user (systemd timers and cron)."""
    found = SystemdTimers().entries()
    cron = CronTable()
    if cron.available():
        found += cron.entries()
    return found


# ---- the scheduled run --------------------------------------------------------------------
def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def record_path(root: Path, env_name: str) -> Path:
    return state_dir(root) / f"schedule-{env_name}.json"


@dataclass
class ScheduledRun:
    """The last scheduled run of an environment, kept in ``<state dir>/schedule-<env>.json``."""

    environment: str
    last_run: str = ""  # ISO 8601 UTC
    result: str = ""  # ok | failed
    last_success: str = ""
    backup_id: str = ""
    pruned: list[str] = field(default_factory=list)
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "last_run": self.last_run,
            "result": self.result,
            "last_success": self.last_success,
            "backup_id": self.backup_id,
            "pruned": list(self.pruned),
            "error": self.error,
        }

    @classmethod
    def load(cls, root: Path, env_name: str) -> ScheduledRun:
        path = record_path(root, env_name)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(env_name)
        return cls(
            environment=env_name,
            last_run=str(data.get("last_run", "")),
            result=str(data.get("result", "")),
            last_success=str(data.get("last_success", "")),
            backup_id=str(data.get("backup_id", "")),
            pruned=[str(p) for p in data.get("pruned", [])],
            error=str(data.get("error", "")),
        )

    def save(self, root: Path) -> None:
        path = record_path(root, self.environment)
        write_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")


def _emit(event: Event) -> None:
    from .hooks.manager import get_plugin_manager

    get_plugin_manager().emit(event)


def run_scheduled_backup(
    env_name: str,
    *,
    open_project: Callable[[], Any],
    backup: Callable[[Any], Any],
    prune: Callable[[Any], Any],
    root: Path,
    now: Callable[[], _dt.datetime] = _now,
) -> ScheduledRun:
    """Back up, then prune; record the run; re-raise a failure after recording it.

    ``backup`` (``create_backup``) emits BACKUP_SUCCEEDED or BACKUP_FAILED itself; a failure
    before it (the environment does not load) or after it (pruning) is reported here as
    BACKUP_FAILED, so every failed scheduled run reaches the alert plugins exactly once.
    """
    record = ScheduledRun.load(root, env_name)
    record.last_run = now().isoformat(timespec="seconds")
    record.pruned = []
    record.error = ""
    phase = "open"
    try:
        project = open_project()
        phase = "backup"
        manifest = backup(project)
        record.backup_id = str(getattr(manifest, "id", ""))
        phase = "prune"
        result = prune(project)
        record.pruned = [str(getattr(b, "id", b)) for b in getattr(result, "deleted", [])]
    except BaseException as exc:
        message = exc.message if isinstance(exc, LakehouseError) else type(exc).__name__
        record.result = "failed"
        record.error = message
        record.save(root)
        if phase != "backup" and isinstance(exc, Exception):
            what = "backup" if phase == "open" else f"prune after backup {record.backup_id}"
            _emit(
                Event(
                    EventKind.BACKUP_FAILED,
                    env_name,
                    f"Scheduled {what} of {env_name} failed: {message}",
                    details={"scheduled": True, "phase": phase},
                )
            )
        raise
    record.result = "ok"
    record.last_success = record.last_run
    record.save(root)
    return record


# ---- missed schedules ---------------------------------------------------------------------
@dataclass(frozen=True)
class BackupScheduleStatus:
    """Whether an environment's scheduled backups are on time."""

    environment: str
    schedule: str  # manual | daily
    last_success: _dt.datetime | None
    source: str  # backups | schedule record | "" (none)
    missed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "schedule": self.schedule,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "source": self.source,
            "missed": self.missed,
            "message": self.message,
        }


def _parse_time(text: str) -> _dt.datetime | None:
    try:
        value = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=_dt.UTC)


def backup_schedule_status(
    env: Environment,
    *,
    now: _dt.datetime | None = None,
    backup_times: Iterable[_dt.datetime] | None = None,
) -> BackupScheduleStatus:
    """Is the last successful backup of ``env`` younger than its period plus the grace hour?

    The last success is the newest of: the newest complete backup in the environment's backup
    directory, and the scheduled-run record. ``manual`` environments are never missed.
    """
    schedule = (env.get("BACKUP_SCHEDULE") or "manual").lower()
    now = now or _now()
    candidates: list[tuple[_dt.datetime, str]] = []
    if backup_times is None:
        from .data.store import default_dest, list_backups

        backups, _ = list_backups(default_dest(env), env.name)
        backup_times = [b.time for b in backups[:1]]
    candidates += [(t, "backups") for t in backup_times]
    recorded = _parse_time(ScheduledRun.load(env.root, env.name).last_success)
    if recorded is not None:
        candidates.append((recorded, "schedule record"))
    last, source = max(candidates) if candidates else (None, "")
    period = PERIODS.get(schedule)
    if period is None:
        return BackupScheduleStatus(env.name, schedule, last, source, False, "")
    if last is None:
        message = (
            f"{env.name} has BACKUP_SCHEDULE={schedule} but no successful backup yet; check "
            f"`invoke backup.schedule --list` and run `invoke backup --env {env.name}`."
        )
        return BackupScheduleStatus(env.name, schedule, None, "", True, message)
    age = now - last
    if age <= period + GRACE:
        return BackupScheduleStatus(env.name, schedule, last, source, False, "")
    hours = age.total_seconds() / 3600
    message = (
        f"the {schedule} backup of {env.name} is overdue: the last successful one is "
        f"{hours:.0f}h old ({last.isoformat(timespec='minutes')}); check "
        f"`invoke backup.schedule --list` and <state dir>/schedule-{env.name}.json."
    )
    return BackupScheduleStatus(env.name, schedule, last, source, True, message)


def schedule_missed_event(status: BackupScheduleStatus) -> Event:
    return Event(
        EventKind.SCHEDULE_MISSED,
        status.environment,
        status.message,
        details=status.to_dict(),
    )
