"""What a smoke run reports: one verdict per hop, the clean-up, and the run as a whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASSED = "passed"
FAILED = "failed"
NOT_REHEARSED = "not rehearsed"
SKIPPED = "skipped"
VERDICTS = (PASSED, FAILED, NOT_REHEARSED, SKIPPED)


class HopFailure(Exception):
    """A hop failed; ``cause`` is one sentence a user can act on."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class HopSkipped(Exception):
    """A hop cannot run here (for example its port is not published); not a failure."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass
class HopResult:
    name: str
    services: tuple[str, ...]
    verdict: str
    seconds: float
    cause: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hop": self.name,
            "services": list(self.services),
            "verdict": self.verdict,
            "seconds": round(self.seconds, 3),
            "cause": self.cause or None,
            "detail": self.detail or None,
        }


@dataclass
class CleanupResult:
    what: str
    ok: bool
    cause: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "ok": self.ok, "cause": self.cause or None}


@dataclass
class SmokeReport:
    environment: str
    run_id: str
    rehearsal: bool
    hops: list[HopResult] = field(default_factory=list)
    cleanup: list[CleanupResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[HopResult]:
        return [h for h in self.hops if h.verdict == FAILED]

    @property
    def cleanup_failed(self) -> list[CleanupResult]:
        return [c for c in self.cleanup if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cleanup_failed

    def hop(self, name: str) -> HopResult:
        for h in self.hops:
            if h.name == name:
                return h
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        return {v: sum(1 for h in self.hops if h.verdict == v) for v in VERDICTS}

    def summary(self) -> str:
        c = self.counts()
        text = (
            f"smoke {self.environment}: {c[PASSED]} passed, {c[FAILED]} failed, "
            f"{c[NOT_REHEARSED]} not rehearsed, {c[SKIPPED]} skipped"
        )
        if self.cleanup_failed:
            text += f"; clean-up incomplete ({', '.join(x.what for x in self.cleanup_failed)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "run_id": self.run_id,
            "rehearsal": self.rehearsal,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "hops": [h.to_dict() for h in self.hops],
            "cleanup": [c.to_dict() for c in self.cleanup],
        }
