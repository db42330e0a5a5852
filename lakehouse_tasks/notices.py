"""What a long-running data operation tells the person while it works, as data.

The data modules (backup, restore, verify, the drill) say ``info``/``warn``/``error`` and start
one transfer per artefact through a :class:`Notices`; they never render. The task layer hands
down the one that renders (``ui.Output``: colours on a terminal, a rich bar per artefact);
called without one, :class:`PlainNotices` writes plain lines to stderr, and
:class:`RecordedNotices` keeps them for a test to read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

#: Advances one transfer by a number of bytes.
Advance = Callable[[int], None]


class Transfers(Protocol):
    """The per-artefact progress of one backup or restore, entered around the whole of it."""

    def __enter__(self) -> Transfers: ...

    def __exit__(self, *exc: Any) -> None: ...

    def start(self, label: str, total: int | None) -> Advance:
        """One artefact begins; the returned callable advances it by bytes written."""
        ...


class Notices(Protocol):
    """Where a data operation reports progress; ``ui.Output`` is the rendering one."""

    def info(self, text: str) -> None: ...

    def warn(self, text: str) -> None: ...

    def error(self, text: str) -> None: ...

    def transfers(self) -> Transfers: ...


class LineTransfers:
    """One line per artefact (no bar): what a pipe, a log or a test sees."""

    def __init__(self, notices: Notices) -> None:
        self.notices = notices

    def __enter__(self) -> LineTransfers:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def start(self, label: str, total: int | None) -> Advance:
        self.notices.info(f"{label} ...")
        return lambda n: None


class PlainNotices:
    """Plain lines on stderr (``warning:``/``error:`` prefixed), the default of the data
    functions when no task hands one down (the lifecycle's pre-deploy backup)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def info(self, text: str) -> None:
        self._write(text)

    def warn(self, text: str) -> None:
        self._write("warning: " + text)

    def error(self, text: str) -> None:
        self._write("error: " + text)

    def transfers(self) -> Transfers:
        return LineTransfers(self)


@dataclass
class RecordedNotices:
    """Keeps every notice as ``(level, text)``, for tests and callers that render later."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def warn(self, text: str) -> None:
        self.lines.append(("warn", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))

    def transfers(self) -> Transfers:
        return LineTransfers(self)

    def texts(self, level: str | None = None) -> list[str]:
        return [text for lvl, text in self.lines if level is None or lvl == level]


__all__ = ["Advance", "LineTransfers", "Notices", "PlainNotices", "RecordedNotices", "Transfers"]
