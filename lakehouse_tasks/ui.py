"""Rendering: every data object becomes a rich table on a terminal, plain text when piped, and
JSON with ``--json`` — from the same :class:`Table` value.

stdout carries data (tables, JSON); stderr carries progress, warnings and errors, so pipes
stay clean.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .notices import LineTransfers, Transfers
from .units import human_bytes, human_duration

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

STATUS_STYLES = {
    "pass": "green",
    "ok": "green",
    "healthy": "green",
    "running": "green",
    "exited (0)": "green",
    "warn": "yellow",
    "starting": "yellow",
    "waiting": "dim",
    "fail": "bold red",
    "unhealthy": "bold red",
    "missing": "bold red",
    "exited": "red",
    "restarting": "red",
    "same": "",
    "differs": "yellow",
}


def _is_tty(stream: IO[str]) -> bool:
    if os.environ.get("LAKEHOUSE_FORCE_TTY") == "1":
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class Table:
    """Tabular data with a title, column headers and rows of plain values."""

    columns: Sequence[tuple[str, str]]  # (key, header)
    rows: Sequence[Mapping[str, Any]]
    title: str = ""
    caption: str = ""
    status_column: str | None = None
    highlight: Callable[[Mapping[str, Any]], str] | None = field(default=None, repr=False)


_PLAIN = frozenset({str, int, float, bool})


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types for dataclasses, enums, paths, datetimes and mappings."""
    if obj is None or type(obj) in _PLAIN:  # most of a snapshot's leaves: answered first
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "to_dict"):
            return to_jsonable(obj.to_dict())
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (Path,)):
        return str(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    converted = to_jsonable(obj)
    if converted is obj:
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")
    return converted


def json_line(obj: Any) -> str:
    """``json.dumps(to_jsonable(obj))`` without walking what is already plain: the encoder
    asks :func:`to_jsonable` only for the objects it cannot write itself (a watch at 256
    services writes some 9000 plain values a refresh)."""
    return json.dumps(obj, default=_json_default)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "-"
    return str(value)


def _text(text: str, style: str) -> Text:
    from rich.text import Text

    return Text(text, style=style)


class Output:
    """Where a task writes: data to stdout, progress to stderr."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.is_tty = _is_tty(self.stdout)
        self.err_is_tty = _is_tty(self.stderr)

    # rich is imported the first time something is printed through it: a piped or --json run
    # never does, and rich's import is a good part of a short command's start-up
    @functools.cached_property
    def console(self) -> Console:
        from rich.console import Console

        return Console(
            file=self.stdout, force_terminal=self.is_tty or None, highlight=False, soft_wrap=False
        )

    @functools.cached_property
    def err_console(self) -> Console:
        from rich.console import Console

        return Console(file=self.stderr, force_terminal=self.err_is_tty or None, highlight=False)

    # ---- data ---------------------------------------------------------------------------
    def json(self, data: Any) -> None:
        self.stdout.write(json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n")
        self.stdout.flush()

    def table(self, table: Table) -> None:
        if self.is_tty:
            # Never cropped: when the names and addresses alone are wider than the terminal,
            # the terminal wraps the line rather than rich cutting it.
            self.console.print(render_rich(table), crop=False)
        else:
            self.stdout.write(render_plain(table))
            self.stdout.flush()

    def line(self, text: str = "", style: str | None = None) -> None:
        """A line of data on stdout (styled on a terminal only)."""
        if self.is_tty:
            self.console.print(_text(text, style or ""))
        else:
            self.stdout.write(text + "\n")
            self.stdout.flush()

    # ---- progress -----------------------------------------------------------------------
    def info(self, text: str) -> None:
        if self.err_is_tty:
            self.err_console.print(_text(text, "cyan"))
        else:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def warn(self, text: str) -> None:
        if self.err_is_tty:
            self.err_console.print(_text("warning: " + text, "yellow"))
        else:
            self.stderr.write("warning: " + text + "\n")
            self.stderr.flush()

    def error(self, text: str) -> None:
        if self.err_is_tty:
            self.err_console.print(_text("error: " + text, "bold red"))
        else:
            self.stderr.write("error: " + text + "\n")
            self.stderr.flush()

    def transfers(self) -> Transfers:
        """Per-artefact progress of a backup or restore: a rich bar on a terminal, one line per
        artefact otherwise (``notices.Notices``)."""
        if self.err_is_tty and not self.json_mode:
            return TransferProgress(self)
        return LineTransfers(self)

    def success(self, text: str) -> None:
        if self.err_is_tty:
            self.err_console.print(_text(text, "bold green"))
        else:
            self.stderr.write(text + "\n")
            self.stderr.flush()


#: Columns whose cells a user copies or reads whole: names, addresses, URLs, ids. On a
#: narrow terminal rich shrinks the other columns (they wrap) but never cuts these.
WHOLE_COLUMNS = frozenset(
    {
        "service",
        "name",
        "url",
        "ports",
        "port",
        "published",
        "address",
        "host_ip",
        "image",
        "id",
        "container",
        "container_id",
        "backup",
        "volume",
        "path",
        "file",
        "key",
        "variable",
        "environment",
        "task",
    }
)


def render_rich(table: Table) -> RichTable:
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    # Light borders: every character of the width goes to the cells.
    rich = RichTable(
        title=table.title or None,
        caption=table.caption or None,
        header_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for key, header in table.columns:
        if key in WHOLE_COLUMNS or header.lower() in WHOLE_COLUMNS:
            # As wide as its widest name or address: a list ("a, b") may wrap between items.
            widest = max(
                [len(header), *(len(w) for r in table.rows for w in _cell(r.get(key)).split())]
            )
            rich.add_column(header, min_width=widest, overflow="fold")
        else:
            rich.add_column(header, overflow="fold")
    for row in table.rows:
        cells = []
        for key, _header in table.columns:
            text = _cell(row.get(key))
            style = ""
            if key == table.status_column:
                style = STATUS_STYLES.get(text.lower(), STATUS_STYLES.get(text.split(" ")[0], ""))
            cells.append(Text(text, style=style))
        row_style = table.highlight(row) if table.highlight else ""
        rich.add_row(*cells, style=row_style or None)
    return rich


def render_plain(table: Table) -> str:
    """Aligned columns separated by two spaces; no colour, no box drawing."""
    headers = [h for _k, h in table.columns]
    body = [[_cell(row.get(k)) for k, _h in table.columns] for row in table.rows]
    widths = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(headers)]

    def fmt(cells: Iterable[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()

    lines = []
    if table.title:
        lines.append(table.title)
    lines.append(fmt(headers))
    lines.extend(fmt(r) for r in body)
    if table.caption:
        lines.append(table.caption)
    return "\n".join(lines) + "\n"


class TransferProgress:
    """A rich bar per artefact (size, speed) on the terminal's stderr."""

    def __init__(self, out: Output) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._rich = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=out.err_console,
            transient=False,
        )

    def __enter__(self) -> TransferProgress:
        self._rich.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._rich.__exit__(*exc)

    def start(self, label: str, total: int | None) -> Callable[[int], None]:
        task = self._rich.add_task(label, total=total or None)
        return lambda n: self._rich.advance(task, n)


__all__ = [
    "Output",
    "Table",
    "TransferProgress",
    "human_bytes",
    "human_duration",
    "json_line",
    "render_plain",
    "render_rich",
    "to_jsonable",
]
