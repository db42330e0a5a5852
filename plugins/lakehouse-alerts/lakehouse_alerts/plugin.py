"""Hooks of the ``alerts`` plugin: deliver lakehouse events to notification channels.

Channels are Apprise URLs listed in the environment's ``ALERT_URLS``, separated by spaces or
commas, each optionally followed by ``|<minimum severity>``::

    ALERT_URLS="json://127.0.0.1:8099/hook|warning mailto://user:pass@example.org|error"

A channel without a suffix gets ``ALERT_MIN_SEVERITY`` (default ``warning``). A comma only
separates channels when a new ``scheme://`` follows it, so ``mailto://...?to=a@x,b@y`` keeps
its recipient list.

Throttling: an event whose :attr:`~lakehouse_tasks.events.Event.key` (kind, environment,
service) was delivered less than ``ALERT_THROTTLE_SECONDS`` (default 300) ago is not delivered
again. The state is a JSON file in the tool's state directory, shared by every invocation
(cron runs of ``health`` included) under a file lock. A ``service.recovered`` event clears the
throttle of that service, so its next failure alerts at once.

A channel that fails is reported on stderr by its scheme and position, never by its URL
(URLs carry tokens and passwords); the task always goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse_tasks.plugin import (
    Check,
    Event,
    EventKind,
    LakehouseError,
    Severity,
    hookimpl,
    load_environment,
    passed,
    project_root,
    state_dir,
    warned,
)

if TYPE_CHECKING:
    from lakehouse_tasks.plugin import Environment, Project

DEFAULT_MIN_SEVERITY = Severity.WARNING
DEFAULT_THROTTLE_SECONDS = 300
STATE_FILE = "alerts-throttle.json"
LOCK_FILE = "alerts-throttle.lock"

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# A comma separates two channels only when a new scheme:// follows it.
_CHANNEL_SEPARATOR = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
# Loggers that write full request URLs (and so tokens) at DEBUG; muted while delivering.
_NOISY_LOGGERS = ("apprise", "urllib3")

Warn = Callable[[str], None]


def _stderr_warn(text: str) -> None:
    sys.stderr.write(f"warning: alerts: {text}\n")
    sys.stderr.flush()


# ---- configuration --------------------------------------------------------------------------
def scheme_of(url: str) -> str:
    """The URL's scheme (``slack``, ``json`` ...), the only part of a URL ever shown."""
    match = _SCHEME_RE.match(url.strip())
    return match.group(1).lower() if match else "unknown"


@dataclass(frozen=True)
class Channel:
    """One notification channel: an Apprise URL and the lowest severity it receives.

    ``repr`` shows the scheme only, so a channel can appear in logs and tracebacks safely.
    """

    url: str = field(repr=False)
    minimum: Severity
    position: int = 1  # 1-based place in ALERT_URLS, to name a channel without its URL

    @property
    def scheme(self) -> str:
        return scheme_of(self.url)

    @property
    def label(self) -> str:
        return f"channel {self.position} ({self.scheme}://)"

    def accepts(self, event: Event) -> bool:
        return event.level >= self.minimum


@dataclass(frozen=True)
class AlertSettings:
    """What an environment configures: its channels and the throttle window."""

    channels: tuple[Channel, ...] = ()
    throttle_seconds: float = DEFAULT_THROTTLE_SECONDS
    problems: tuple[str, ...] = ()  # configuration mistakes, worded without any URL


def split_channel_urls(text: str) -> list[str]:
    """The channel entries of ``ALERT_URLS`` (spaces or commas between them)."""
    return [part for part in _CHANNEL_SEPARATOR.split(text or "") if part and part.strip(",")]


def parse_alert_urls(text: str, default_minimum: Severity = DEFAULT_MIN_SEVERITY) -> AlertSettings:
    """Parse ``ALERT_URLS``; unreadable severities are reported and fall back to the default."""
    channels: list[Channel] = []
    problems: list[str] = []
    for position, entry in enumerate(split_channel_urls(text), start=1):
        url, minimum = entry, default_minimum
        head, sep, suffix = entry.rpartition("|")
        if sep:
            url = head
            try:
                minimum = Severity.parse(suffix)
            except ValueError as exc:
                problems.append(
                    f"channel {position} ({scheme_of(url)}://): {exc}; it receives "
                    f"{default_minimum.name.lower()} and above"
                )
        if scheme_of(url) == "unknown":
            problems.append(
                f"channel {position} is not a URL (expected scheme://...); it is ignored"
            )
            continue
        channels.append(Channel(url, minimum, position))
    return AlertSettings(tuple(channels), problems=tuple(problems))


def settings_from_values(get: Callable[[str], str | None]) -> AlertSettings:
    """Settings from a variable lookup (``ALERT_URLS``, ``ALERT_MIN_SEVERITY``, ...)."""
    problems: list[str] = []
    minimum = DEFAULT_MIN_SEVERITY
    raw_minimum = (get("ALERT_MIN_SEVERITY") or "").strip()
    if raw_minimum:
        try:
            minimum = Severity.parse(raw_minimum)
        except ValueError as exc:
            problems.append(f"ALERT_MIN_SEVERITY: {exc}; using warning")
    window: float = DEFAULT_THROTTLE_SECONDS
    raw_window = (get("ALERT_THROTTLE_SECONDS") or "").strip()
    if raw_window:
        try:
            window = float(raw_window)
            if window < 0:
                raise ValueError
        except ValueError:
            problems.append(
                f"ALERT_THROTTLE_SECONDS={raw_window!r} is not a number of seconds >= 0; "
                f"using {DEFAULT_THROTTLE_SECONDS}"
            )
            window = DEFAULT_THROTTLE_SECONDS
    parsed = parse_alert_urls(get("ALERT_URLS") or "", minimum)
    return AlertSettings(parsed.channels, window, tuple(problems) + parsed.problems)


def settings_for_environment(env: Environment) -> AlertSettings:
    """An environment's alert settings; the process environment fills names its files lack.

    (The environment loader only takes process variables the schema knows, and these are not
    in env/variables.yaml yet.)
    """
    return settings_from_values(lambda name: env.get(name) or os.environ.get(name))


# ---- throttling -----------------------------------------------------------------------------
class ThrottleStore:
    """When each event key was last delivered, in a JSON file shared by every invocation."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, float]]:
        """The delivered-at table under an exclusive lock; saved when the block ends."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                table = self._read()
                before = dict(table)
                yield table
                if table != before:
                    self._write(table)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): float(v) for k, v in (data.get("delivered") or {}).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}  # missing or damaged: forget, at worst one alert is repeated

    def _write(self, table: Mapping[str, float]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".alerts-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"version": 1, "delivered": dict(sorted(table.items()))}, fh, indent=1)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def service_suffix(event: Event) -> str:
    """The part of :attr:`Event.key` that names the environment and service."""
    return f":{event.environment}:{event.service or '-'}"


# ---- delivery -------------------------------------------------------------------------------
_NOTIFY_TYPES = {
    Severity.DEBUG: "info",
    Severity.INFO: "info",
    Severity.WARNING: "warning",
    Severity.ERROR: "failure",
    Severity.CRITICAL: "failure",
}
_GOOD_NEWS = frozenset(
    {
        EventKind.DEPLOY_SUCCEEDED,
        EventKind.SERVICE_RECOVERED,
        EventKind.BACKUP_SUCCEEDED,
    }
)


def render_alert(event: Event) -> tuple[str, str, str]:
    """(title, body, Apprise notify type) of ``event``."""
    title = f"[{event.level.name}] lakehouse {event.environment}: {event.kind.value}"
    lines = [event.summary(), f"time: {event.time.isoformat()}"]
    for key, value in sorted(event.details.items()):
        lines.append(f"{key}: {value}")
    kind = "success" if event.kind in _GOOD_NEWS else _NOTIFY_TYPES[event.level]
    return title, "\n".join(lines), kind


@contextlib.contextmanager
def _quiet_transport_logs() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    saved = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, was in zip(loggers, saved, strict=True):
            lg.disabled = was


def send_apprise(channel: Channel, title: str, body: str, notify_type: str) -> bool:
    """Deliver one message through Apprise; False when the channel did not take it."""
    import apprise

    with _quiet_transport_logs():
        notifier = apprise.Apprise()
        if not notifier.add(channel.url):
            raise ValueError("not a URL Apprise can use (unknown scheme or malformed)")
        return bool(notifier.notify(body=body, title=title, notify_type=notify_type))


Sender = Callable[[Channel, str, str, str], bool]


class AlertsPlugin:
    """Delivers events to the channels of the event's environment, throttled per event key.

    ``settings`` (a fixed :class:`AlertSettings`), ``state_dir``, ``root``, ``sender``,
    ``clock`` and ``warn`` are injectable for tests and embedding code; by default settings
    come from the environment named by the event, found under the project root.
    """

    def __init__(
        self,
        *,
        settings: AlertSettings | None = None,
        state_dir: Path | None = None,
        root: Path | None = None,
        sender: Sender = send_apprise,
        clock: Callable[[], float] = time.time,
        warn: Warn = _stderr_warn,
    ) -> None:
        self._settings = settings
        self._state_dir = state_dir
        self._root = root
        self._cache: dict[str, AlertSettings] = {}
        self._reported: set[str] = set()
        self.sender = sender
        self.clock = clock
        self.warn = warn

    # ---- where things are ---------------------------------------------------------------
    def root(self) -> Path:
        if self._root is None:
            self._root = project_root()
        return self._root

    def store(self, env: Environment | None = None) -> ThrottleStore:
        if self._state_dir is not None:
            return ThrottleStore(self._state_dir)
        return ThrottleStore(state_dir(env.root if env is not None else self.root()))

    def settings_for(self, environment: str) -> AlertSettings:
        """The settings of ``environment`` (loaded once per process and environment)."""
        if self._settings is not None:
            return self._settings
        if environment not in self._cache:
            try:
                env = load_environment(environment, root=self.root(), strict=False)
                settings = settings_for_environment(env)
            except LakehouseError as exc:
                # Alerts must not fail because the environment does; the process environment
                # may still name channels (cron jobs often set ALERT_URLS there).
                self._warn_once(f"cannot read environment {environment!r} ({exc.message})")
                settings = settings_from_values(os.environ.get)
            self._cache[environment] = settings
        return self._cache[environment]

    def _warn_once(self, text: str) -> None:
        if text not in self._reported:
            self._reported.add(text)
            self.warn(text)

    # ---- the work -----------------------------------------------------------------------
    def deliver(self, event: Event, env: Environment | None = None) -> list[Channel]:
        """Deliver ``event`` where it belongs; return the channels that took it.

        ``env`` is the environment the task resolved (with its ``--env-file`` layers); without
        it the environment is loaded again by name.
        """
        if self._settings is None and env is not None:
            settings = settings_for_environment(env)
        else:
            settings = self.settings_for(event.environment)
        for problem in settings.problems:
            self._warn_once(f"ALERT_URLS of {event.environment}: {problem}")
        targets = [c for c in settings.channels if c.accepts(event)]
        recovered = event.kind is EventKind.SERVICE_RECOVERED
        if not targets and not recovered:
            return []
        delivered: list[Channel] = []
        with self.store(env).locked() as table:
            now = self.clock()
            if recovered:
                suffix = service_suffix(event)
                for key in [k for k in table if k.endswith(suffix)]:
                    del table[key]
            last = table.get(event.key)
            if last is not None and now - last < settings.throttle_seconds:
                return []
            title, body, notify_type = render_alert(event)
            for channel in targets:
                try:
                    ok = self.sender(channel, title, body, notify_type)
                except Exception as exc:
                    # The exception text may quote the URL: show only its type.
                    self.warn(
                        f"{channel.label} failed to deliver {event.kind.value} "
                        f"({type(exc).__name__}); check that entry of ALERT_URLS"
                    )
                    continue
                if ok:
                    delivered.append(channel)
                else:
                    self.warn(
                        f"{channel.label} did not accept {event.kind.value}; check that entry "
                        "of ALERT_URLS and that the service is reachable"
                    )
            if delivered:
                table[event.key] = now
            # Entries older than the window no longer throttle anything.
            for key in [k for k, t in table.items() if now - t >= settings.throttle_seconds]:
                del table[key]
        return delivered

    # ---- hooks --------------------------------------------------------------------------
    @hookimpl
    def lakehouse_event(self, event: Event, env: Environment | None) -> None:
        try:
            self.deliver(event, env)
        except Exception as exc:  # never break the task; the URL is never in the message
            self.warn(f"could not process {event.kind.value} ({type(exc).__name__}: {exc})")

    @hookimpl
    def lakehouse_preflight_checks(self, project: Project) -> list[Check]:
        settings = settings_for_environment(project.env)
        name = "alert channels"
        if settings.problems:
            hint = "fix ALERT_URLS (see docs/PLUGINS.md)"
            return [warned(name, "; ".join(settings.problems), hint)]
        if not settings.channels:
            return [passed(name, "no ALERT_URLS: events are only logged")]
        import apprise

        unusable = [c.label for c in settings.channels if not apprise.Apprise().add(c.url)]
        if unusable:
            return [
                warned(
                    name,
                    f"not usable by Apprise: {', '.join(unusable)}",
                    "fix those entries of ALERT_URLS (see the Apprise URL formats)",
                )
            ]
        schemes = ", ".join(f"{c.scheme}>={c.minimum.name.lower()}" for c in settings.channels)
        return [passed(name, f"{len(settings.channels)} channel(s): {schemes}")]


#: The instance the ``alerts`` entry point registers (pluggy scans this module's attributes).
ALERTS = AlertsPlugin()


@hookimpl
def lakehouse_event(event: Event, env: Environment | None) -> None:
    ALERTS.lakehouse_event(event, env)


@hookimpl
def lakehouse_preflight_checks(project: Project) -> list[Check]:
    return ALERTS.lakehouse_preflight_checks(project)


__all__ = [
    "ALERTS",
    "AlertSettings",
    "AlertsPlugin",
    "Channel",
    "ThrottleStore",
    "parse_alert_urls",
    "render_alert",
    "send_apprise",
    "settings_for_environment",
    "settings_from_values",
    "split_channel_urls",
]
