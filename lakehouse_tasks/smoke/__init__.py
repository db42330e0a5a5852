"""``invoke smoke``: a data-path check of a deployed environment, hop by hop (issue 16)."""

from .model import (
    FAILED,
    NOT_REHEARSED,
    PASSED,
    SKIPPED,
    CleanupResult,
    HopFailure,
    HopResult,
    HopSkipped,
    SmokeReport,
)

__all__ = [
    "FAILED",
    "NOT_REHEARSED",
    "PASSED",
    "SKIPPED",
    "CleanupResult",
    "HopFailure",
    "HopResult",
    "HopSkipped",
    "SmokeReport",
]
