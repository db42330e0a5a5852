"""What a backup schedule runs and when (``ScheduleSpec``), and its systemd units and cron line as text."""

from __future__ import annotations

import datetime as _dt
import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..environment import Environment
from ..errors import ConfigError
from ..paths import state_dir

DEFAULT_AT = "02:00"

#: How often each ``BACKUP_SCHEDULE`` value runs (``manual`` never does).
PERIODS: dict[str, _dt.timedelta] = {"daily": _dt.timedelta(days=1)}

#: How late a scheduled backup may be before ``health`` calls it missed.
GRACE = _dt.timedelta(hours=1)

CRONTAB_FILE_ENV = "LAKEHOUSE_CRONTAB_FILE"

SYSTEMD_DIR_ENV = "LAKEHOUSE_SYSTEMD_DIR"

MARKER = "# lakehouse-ops backup schedule"

PLATFORMS = ("systemd", "cron")


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
