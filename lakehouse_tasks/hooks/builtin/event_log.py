"""Built-in plugin ``lakehouse.event_log``: every event as one JSON line in ``events.jsonl``.

The log lives in the project's state directory (``<project>/.lakehouse/events.jsonl``, or
``$LAKEHOUSE_STATE_DIR/events.jsonl``), so ``jq`` or an alert shipper can follow it. Each line
is ``Event.to_dict()``; lines are appended with one write each, so concurrent tasks do not
interleave within a line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ... import hookimpl
from ...paths import project_root, state_dir

if TYPE_CHECKING:
    from ...events import Event

FILE_NAME = "events.jsonl"


class EventLog:
    """Appends events to ``<state dir>/events.jsonl`` (the state dir is found per event)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory

    def path(self) -> Path:
        directory = self.directory or state_dir(project_root())
        directory.mkdir(parents=True, exist_ok=True)
        return directory / FILE_NAME

    @hookimpl
    def lakehouse_event(self, event: Event) -> None:
        line = json.dumps(event.to_dict(), sort_keys=True, ensure_ascii=False) + "\n"
        with self.path().open("a", encoding="utf-8") as log:
            log.write(line)
