"""The stack's logs: ``docker compose logs`` streamed line by line, secrets scrubbed.

Compose prints every line as ``<service>-<n>  | <timestamp> <text>``. :func:`parse_log_line`
splits that prefix off so the task can colour each service consistently on a terminal and
pass lines through untouched when piped. Every line is scrubbed with ``Environment.scrub``
before anything else sees it (in :mod:`lakehouse_tasks.engine.executor`), so a secret a service prints
never reaches the screen, a pipe or a file.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .backends.compose import ComposeBackend
from .errors import ConfigError
from .parsing import parse_names
from .project import Project
from .stack import require_known

if TYPE_CHECKING:
    from .backends.base import Backend

#: Colours given to service prefixes; a service always gets the same one (crc32 of its name).
PREFIX_COLOURS = (
    "cyan",
    "green",
    "magenta",
    "blue",
    "yellow",
    "bright_cyan",
    "bright_green",
    "bright_magenta",
    "bright_blue",
    "bright_red",
)

_PREFIX = re.compile(r"^(?P<container>[A-Za-z0-9][A-Za-z0-9_.-]*)\s*\| ?(?P<text>.*)$")
_REPLICA = re.compile(r"-\d+$")
_SINCE = re.compile(
    r"^(?:\d+(?:\.\d+)?(?:ns|us|ms|s|m|h))+$"  # a duration: 10m, 1h30m
    r"|^\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?$"  # a date or RFC 3339 time
    r"|^\d+$"  # a Unix timestamp
)


@dataclass(frozen=True)
class LogLine:
    """One line of ``compose logs``: the container prefix (``minio-1``) and the text.

    ``container`` is "" for lines compose prints without a prefix (its own messages).
    """

    container: str
    text: str

    @property
    def service(self) -> str:
        """The service name: the container prefix without its replica number."""
        return _REPLICA.sub("", self.container)

    def to_dict(self) -> dict[str, str]:
        return {"service": self.service, "container": self.container, "text": self.text}


def parse_log_line(raw: str) -> LogLine:
    """Split compose's ``name-1  | text`` prefix off one (already scrubbed) line."""
    match = _PREFIX.match(raw)
    if match is None:
        return LogLine(container="", text=raw)
    return LogLine(container=match["container"], text=match["text"])


def service_colour(service: str) -> str:
    """The rich colour of a service's prefix: stable across runs and processes."""
    return PREFIX_COLOURS[zlib.crc32(service.encode()) % len(PREFIX_COLOURS)]


def render_plain(line: LogLine, width: int = 0) -> str:
    """``name-1  | text`` exactly as compose prints it (for pipes and files)."""
    if not line.container:
        return line.text
    return f"{line.container.ljust(width)} | {line.text}"


def split_services(values: Iterable[str] | None) -> list[str]:
    """Service names from repeated ``--service`` flags and/or comma lists, order kept."""
    return list(parse_names(values))


def validate_services(names: list[str], known: Iterable[str]) -> list[str]:
    """``names`` when every one is a service of the stack; a ConfigError naming them otherwise."""
    require_known(names, known, listed_as="services of this stack")
    return names


def logs_arguments(
    services: list[str],
    *,
    follow: bool = False,
    since: str = "",
    tail: str = "",
    timestamps: bool = True,
) -> list[str]:
    """The arguments after ``docker compose logs`` (validated: a bad value is exit 2)."""
    args = ["--no-color"]
    if timestamps:
        args.append("--timestamps")
    if follow:
        args.append("--follow")
    if since:
        if not _SINCE.match(since.strip()):
            raise ConfigError(
                f"--since {since!r} is neither a duration (10m, 2h) nor a date (2026-11-01 "
                "or 2026-11-01T08:00:00Z); use one of those forms."
            )
        args += ["--since", since.strip()]
    if tail not in ("", None):
        text = str(tail).strip()
        if text != "all" and not (text.isdigit()):
            raise ConfigError(f"--tail {tail!r} is not a number of lines; use e.g. --tail 100.")
        args += ["--tail", text]
    return [*args, *services]


def stream_logs(
    project: Project,
    services: list[str],
    *,
    follow: bool = False,
    since: str = "",
    tail: str = "",
    timestamps: bool = True,
    backend: Backend | None = None,
) -> Generator[LogLine, None, None]:
    """The project's log lines as they come (forever with ``follow``), secrets scrubbed.

    ``backend``: where the stack runs (default compose: ``docker compose logs``)."""
    if services:
        validate_services(services, project.stack.services)
    args = logs_arguments(services, follow=follow, since=since, tail=tail, timestamps=timestamps)
    for raw in (backend or ComposeBackend()).log_lines(project, args):
        # Scrubbed in docker.stream_lines already; scrubbing again is cheap and keeps this
        # function safe whatever feeds it.
        yield parse_log_line(project.env.scrub(raw))


def prefix_width(services: Iterable[str]) -> int:
    """Column width for prefixes so ``|`` lines up (``name-1``, as compose names them)."""
    return max((len(s) + 2 for s in services), default=0)
