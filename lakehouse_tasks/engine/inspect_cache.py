"""Inspect objects kept between the refreshes of ``health --watch``.

A refresh lists the project's containers (one request) and would inspect every one of them
again (one request each: at 256 containers about 60 ms of CPU a second, most of what a
watch costs). Most of those objects have not changed: a container's state, its health
verdict, a restart (a new start) and an exit all change the ``State`` and ``Status`` strings
the list itself carries (``Up 5 minutes (healthy)``). So a container is inspected again when
its list entry changed (which, for a container up less than a minute, is every second:
``Up 5 seconds``), when it is not running and healthy (or running without a
healthcheck), or when its kept object is as old as its own healthcheck interval (the probe
log in the row is then at most one probe behind; without a healthcheck, at most
:data:`MAX_AGE_S`). Everything a row's verdict rests on comes from this refresh's list or
inspect; only the probe log and the limits of a healthy container (``docker update``) may
lag, by less than one healthcheck interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The longest a kept object serves (containers without a healthcheck; longer intervals).
MAX_AGE_S = 30.0


@dataclass
class _Kept:
    key: tuple[str, str]
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
        entries = {str(r.get("ID", "")): (str(r.get("State", "")), str(r.get("Status", "")))
                   for r in listed}  # fmt: skip
        reused: list[dict[str, Any]] = []
        ask: list[str] = []
        for cid in ids:
            kept = self._kept.get(cid)
            if (
                kept is not None
                and kept.key == entries.get(cid)
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
                self._kept[cid] = _Kept(entries[cid], data, now)
        wanted = set(ids)
        for cid in [c for c in self._kept if c not in wanted]:
            del self._kept[cid]  # gone, or not asked for any more
        return reused + fetched
