"""Inspect objects kept between the refreshes of ``health --watch``.

A refresh lists the project's containers (one request) and would inspect every one of them
again (one request each: at 256 containers about 60 ms of CPU a second, most of what a
watch costs). Most of those objects have not changed: a container's state, its health
verdict and an exit all change the ``State`` and ``Status`` strings the list itself carries
(``Up 5 minutes (healthy)``). So a container is inspected again when its list entry changed,
when it is not running and healthy, or when its kept object is as old as its own healthcheck
interval (the probe log in the row is then at most one probe behind; without a healthcheck,
at most :data:`MAX_AGE_S`).

The uptime in ``Status`` moves every second for a container up less than a minute (``Up 5
seconds``), so it is not compared as text: a running container's entry is its state and what
follows the uptime (``(healthy)``), and a restart (a new start) is seen when the listed uptime
is shorter than the kept one plus the time since (docker's ``Up`` durations are whole seconds,
minutes or hours; from two days on they are too coarse, and :data:`MAX_AGE_S` bounds what a
restart of such a container may leave unseen). Everything a row's verdict rests on comes from
this refresh's list or inspect; only the probe log and the limits of a healthy container
(``docker update``) may lag, by less than one healthcheck interval.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The longest a kept object serves (containers without a healthcheck; longer intervals).
MAX_AGE_S = 30.0


#: Seconds a listed uptime may trail the kept one plus the time since (list latency, rounding).
UPTIME_SLACK_S = 2.0

_UP = re.compile(
    r"^Up (?:(Less than a second)|(About a minute)|(About an hour)"
    r"|(\d+) (second|minute|hour|day|week|month|year)s?)(.*)$"
)
_UNIT_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
           "month": 2592000, "year": 31536000}  # fmt: skip


def entry_key(state: str, status: str) -> tuple[tuple[str, str], tuple[float, float] | None]:
    """A list entry without its uptime, and that uptime's bounds in seconds (``None`` when the
    status carries none: not running, or a wording this does not know, which is then compared
    whole)."""
    m = _UP.match(status)
    if m is None:
        return (state, status), None
    less, minute, hour, count, unit, rest = m.groups()
    if less:
        bounds = (0.0, 1.0)
    elif minute:
        bounds = (60.0, 120.0)
    elif hour:
        bounds = (3600.0, 7200.0)
    else:
        size = _UNIT_S[unit]
        low = float(int(count) * size)
        # docker prints seconds, minutes and hours exactly; days on are rounded (unbounded)
        bounds = (low, low + size) if size <= 3600 else (low, math.inf)
    return (state, "Up" + rest), bounds


def restarted(kept: tuple[float, float], now: tuple[float, float], elapsed: float) -> bool:
    """Whether an uptime listed as ``now`` is too short for one listed as ``kept``
    ``elapsed`` seconds ago (the container started again in between)."""
    return now[1] + UPTIME_SLACK_S < kept[0] + elapsed


@dataclass
class _Kept:
    key: tuple[str, str]
    uptime: tuple[float, float] | None
    data: dict[str, Any]
    at: float


def _reusable(data: Mapping[str, Any]) -> float:
    """How long a kept object of a running, healthy container may serve (0: not at all)."""
    state = data.get("State") or {}
    if state.get("Status") != "running":
        return 0.0
    health = (state.get("Health") or {}).get("Status")
    if health not in (None, "", "healthy"):
        return 0.0
    interval_ns = ((data.get("Config") or {}).get("Healthcheck") or {}).get("Interval") or 0
    interval = int(interval_ns) / 1e9 if interval_ns else MAX_AGE_S
    return min(interval, MAX_AGE_S)


class InspectCache:
    """Keeps the inspect objects of one watch; :meth:`inspect` asks only for what changed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._kept: dict[str, _Kept] = {}
        self._clock = clock
        #: The containers the last call inspected (tests and benchmarks read it).
        self.asked: tuple[str, ...] = ()

    def inspect(
        self,
        listed: Sequence[Mapping[str, Any]],
        ids: Sequence[str],
        fetch: Callable[[Sequence[str]], list[dict[str, Any]]],
    ) -> list[dict[str, Any]]:
        """The inspect objects of ``ids`` (rows of ``listed`` give each one's list entry),
        ``fetch`` asked for the ones not kept or changed; in the order ``fetch`` returns
        them, kept ones first."""
        now = self._clock()
        entries = {str(r.get("ID", "")): entry_key(str(r.get("State", "")), str(r.get("Status", "")))
                   for r in listed}  # fmt: skip
        reused: list[dict[str, Any]] = []
        ask: list[str] = []
        for cid in ids:
            kept = self._kept.get(cid)
            entry = entries.get(cid)
            if (
                kept is not None
                and entry is not None
                and kept.key == entry[0]
                and not (
                    kept.uptime is not None
                    and entry[1] is not None
                    and restarted(kept.uptime, entry[1], now - kept.at)
                )
                and now - kept.at < _reusable(kept.data)
            ):
                reused.append(kept.data)
            else:
                ask.append(cid)
        fetched = fetch(ask) if ask else []
        self.asked = tuple(ask)
        for data in fetched:
            cid = str(data.get("Id", ""))
            if cid in entries:
                key, uptime = entries[cid]
                self._kept[cid] = _Kept(key, uptime, data, now)
        wanted = set(ids)
        for cid in [c for c in self._kept if c not in wanted]:
            del self._kept[cid]  # gone, or not asked for any more
        return reused + fetched
