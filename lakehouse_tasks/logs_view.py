"""Log lines on a terminal: the prefix in its service's colour (rich text). The log stream
itself (:mod:`lakehouse_tasks.logs`) renders nothing."""

from __future__ import annotations

from rich.text import Text

from .logs import LogLine, service_colour


def render_coloured(line: LogLine, width: int = 0) -> Text:
    """The same line with its prefix coloured by :func:`service_colour` (for a terminal)."""
    if not line.container:
        return Text(line.text)
    text = Text()
    text.append(line.container.ljust(width) + " | ", style=service_colour(line.service))
    text.append(line.text)  # the message itself keeps the terminal's colour
    return text


__all__ = ["render_coloured"]
