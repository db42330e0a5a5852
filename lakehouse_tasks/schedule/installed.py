"""The schedules installed on this host: the user's crontab (``CronTable``) or systemd timers (``SystemdTimers``), which one to use, install, remove, list."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ExitCode, LakehouseError
from .spec import (
    _MARKER_RE,
    CRONTAB_FILE_ENV,
    PLATFORMS,
    SYSTEMD_DIR_ENV,
    ScheduleSpec,
    render_cron_entry,
    render_systemd_units,
)


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


Runner = Callable[..., "subprocess.CompletedProcess[str]"]
