"""The terminal view of a deploy: the per-service progress table and the live reporter.

Kept out of :mod:`lakehouse_tasks.tasks.deploy` because the reporter subclasses
:class:`lakehouse_tasks.outcomes.Reporter`, and the task modules import no domain module at
import time (CLI start-up, docs/PERFORMANCE.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .outcomes import Reporter, ServiceProgress
from .stack import LAYER_NAMES
from .ui import Output, Table, human_duration

if TYPE_CHECKING:
    from rich.live import Live


PROGRESS_COLUMNS = [
    ("service", "Service"),
    ("layer", "Layer"),
    ("status", "Status"),
    ("elapsed", "Elapsed"),
]


def progress_table(rows: Sequence[ServiceProgress], title: str = "") -> Table:
    ordered = sorted(rows, key=lambda r: (r.layer, r.service))
    return Table(
        columns=PROGRESS_COLUMNS,
        rows=[
            {
                "service": r.service + (" (one-shot)" if r.oneshot else ""),
                "layer": f"{r.layer} {LAYER_NAMES.get(r.layer, '')}".strip(),
                "status": "failed: " + r.failure if r.failure else r.status,
                "elapsed": human_duration(r.elapsed),
            }
            for r in ordered
        ],
        title=title,
        status_column="status",
    )


class TerminalReporter(Reporter):
    """Live per-service table on a terminal; one stderr line per status change when piped."""

    def __init__(self, out: Output, title: str) -> None:
        self.out = out
        self.title = title
        self.live: Live | None = None
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        self.out.info(text)

    def warn(self, text: str) -> None:
        self.out.warn(text)

    def progress(self, rows: Sequence[ServiceProgress], changed: Sequence[ServiceProgress]) -> None:
        if self.out.err_is_tty:
            from rich.live import Live

            from .ui import render_rich

            table = render_rich(progress_table(rows, self.title))
            if self.live is None:
                self.live = Live(table, console=self.out.err_console, refresh_per_second=4)
                self.live.start()
            else:
                self.live.update(table)
            return
        for row in changed:
            status = f"failed ({row.failure})" if row.failure else row.status
            stamp = human_duration(time.monotonic() - self.started)
            self.out.stderr.write(f"[{stamp:>5}] {row.service}: {status}\n")
        if changed:
            self.out.stderr.flush()

    def finish(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
