"""The one event type shared by health, deploy, backup, restore, teardown and plugins.

An alert plugin receives every :class:`Event` through the ``lakehouse_event`` hook, whatever
produced it, and can filter on ``kind`` and ``severity``.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """Ordered, so a channel can ask for ``>= WARNING``."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (use one of {names})") from None


class EventKind(enum.StrEnum):
    DEPLOY_STARTED = "deploy.started"
    DEPLOY_SUCCEEDED = "deploy.succeeded"
    DEPLOY_FAILED = "deploy.failed"
    ROLLBACK = "deploy.rollback"
    SERVICE_UNHEALTHY = "service.unhealthy"
    SERVICE_RECOVERED = "service.recovered"
    SERVICE_RESTARTED = "service.restarted"
    SERVICE_DISAPPEARED = "service.disappeared"
    SERVICE_EXITED = "service.exited"
    BACKUP_SUCCEEDED = "backup.succeeded"
    BACKUP_FAILED = "backup.failed"
    RESTORE_SUCCEEDED = "restore.succeeded"
    RESTORE_FAILED = "restore.failed"
    TEARDOWN = "teardown"
    SCHEDULE_MISSED = "backup.schedule_missed"
    SMOKE_PASSED = "smoke.passed"
    SMOKE_FAILED = "smoke.failed"
    OFFSITE_COPY_SUCCEEDED = "backup.offsite_succeeded"
    OFFSITE_COPY_FAILED = "backup.offsite_failed"
    OFFSITE_COPY_MISSED = "backup.offsite_missed"
    DRILL_SUCCEEDED = "backup.drill_succeeded"
    DRILL_FAILED = "backup.drill_failed"


#: The severity each kind carries unless its producer says otherwise.
DEFAULT_SEVERITY: Mapping[EventKind, Severity] = {
    EventKind.DEPLOY_STARTED: Severity.INFO,
    EventKind.DEPLOY_SUCCEEDED: Severity.INFO,
    EventKind.DEPLOY_FAILED: Severity.ERROR,
    EventKind.ROLLBACK: Severity.WARNING,
    EventKind.SERVICE_UNHEALTHY: Severity.ERROR,
    EventKind.SERVICE_RECOVERED: Severity.INFO,
    EventKind.SERVICE_RESTARTED: Severity.WARNING,
    EventKind.SERVICE_DISAPPEARED: Severity.ERROR,
    EventKind.SERVICE_EXITED: Severity.ERROR,
    EventKind.BACKUP_SUCCEEDED: Severity.INFO,
    EventKind.BACKUP_FAILED: Severity.ERROR,
    EventKind.RESTORE_SUCCEEDED: Severity.WARNING,
    EventKind.RESTORE_FAILED: Severity.CRITICAL,
    EventKind.TEARDOWN: Severity.WARNING,
    EventKind.SCHEDULE_MISSED: Severity.WARNING,
    EventKind.SMOKE_PASSED: Severity.INFO,
    EventKind.SMOKE_FAILED: Severity.ERROR,
    EventKind.OFFSITE_COPY_SUCCEEDED: Severity.INFO,
    EventKind.OFFSITE_COPY_FAILED: Severity.ERROR,
    EventKind.OFFSITE_COPY_MISSED: Severity.WARNING,
    EventKind.DRILL_SUCCEEDED: Severity.INFO,
    EventKind.DRILL_FAILED: Severity.ERROR,
}


def utc_now() -> _dt.datetime:
    """Now, in UTC: the one clock of events, snapshots, records and plans."""
    return _dt.datetime.now(_dt.UTC)


@dataclass(frozen=True)
class Event:
    """Something happened to an environment (or one of its services)."""

    kind: EventKind
    environment: str
    message: str
    service: str | None = None
    severity: Severity | None = None
    time: _dt.datetime = field(default_factory=utc_now)
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity is None:
            object.__setattr__(self, "severity", DEFAULT_SEVERITY.get(self.kind, Severity.INFO))

    @property
    def level(self) -> Severity:
        return self.severity or Severity.INFO

    @property
    def key(self) -> str:
        """What repeated events share (for throttling): kind, environment and service."""
        return f"{self.kind.value}:{self.environment}:{self.service or '-'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "severity": self.level.name.lower(),
            "environment": self.environment,
            "service": self.service,
            "message": self.message,
            "time": self.time.isoformat(),
            "details": dict(self.details),
        }

    def summary(self) -> str:
        where = f"{self.environment}/{self.service}" if self.service else self.environment
        return f"[{self.level.name}] {where}: {self.message}"
