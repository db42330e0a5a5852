"""Check results shared by preflight, security and plugins: pass / warn / fail with a hint."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """One check's outcome. ``hint`` is the one-line fix shown when it is not a pass."""

    name: str
    status: Status
    detail: str = ""
    hint: str = ""
    source: str = "built-in"  # the plugin that contributed it

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "hint": self.hint,
            "source": self.source,
        }


def passed(name: str, detail: str = "") -> Check:
    return Check(name, Status.PASS, detail)


def warned(name: str, detail: str, hint: str) -> Check:
    return Check(name, Status.WARN, detail, hint)


def failed(name: str, detail: str, hint: str) -> Check:
    return Check(name, Status.FAIL, detail, hint)


def worst(checks: Iterable[Check]) -> Status:
    statuses = {c.status for c in checks}
    for status in (Status.FAIL, Status.WARN, Status.PASS):
        if status in statuses:
            return status
    return Status.SKIP
