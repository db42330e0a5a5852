"""CPU and memory of containers read from their cgroup files, when the engine runs on this host.

``docker stats`` and the engine's stats API get their figures from the same kernel files
(``cpu.stat``, ``memory.current``, ``memory.stat``, ``memory.max`` on cgroup v2;
``cpuacct.usage`` and ``memory.*`` on v1), but the engine hands them out only on its stats
collector's once-a-second tick, and a CPU figure needs two ticks. Read directly, two readings
:data:`MIN_WINDOW_S` apart give the CPU figure (the second one is taken when the caller asks
for the rows, so the window overlaps the snapshot's other work), and ``health --watch`` uses
the previous refresh's reading as the first one. The figures follow ``docker stats``' own
rules: CPU in percent of one core (``cpu time delta / wall time delta * 100``, what
``(cpu delta / system delta) * online CPUs * 100`` comes to), memory without the inactive page
cache, the limit capped at the host's memory.

A container's files are found by its full id under the engine's default cgroup parents (the
``cgroupfs`` driver's ``docker/<id>`` and the ``systemd`` driver's
``system.slice/docker-<id>.scope``). A container not found there (a custom
``--cgroup-parent``, a rootless engine, an engine in a VM behind a forwarded socket) is asked
through the engine's API instead (:mod:`.api`), so the figures never depend on where they
were read. ``LAKEHOUSE_CGROUP_STATS=0`` turns the direct reading off.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

#: Where the kernel mounts the cgroup hierarchy.
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The shortest wall-clock window a CPU figure is computed over.
MIN_WINDOW_S = 0.25
#: A previous reading (``health --watch``) older than this is not used as the first one.
PREVIOUS_MAX_AGE_S = 30.0

_FULL_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Cgroup:
    """The directories holding one container's CPU and memory files."""

    cpu: Path
    memory: Path
    v2: bool


@dataclass(frozen=True)
class Reading:
    """One reading of a container's counters."""

    cpu_ns: int
    mem_used: int | None
    mem_limit: int | None
    at: float  # time.monotonic()


def enabled() -> bool:
    return os.environ.get("LAKEHOUSE_CGROUP_STATS", "1") != "0"


def locate(cid: str, root: Path = CGROUP_ROOT) -> Cgroup | None:
    """The cgroup directories of container ``cid`` (a full id), or ``None``."""
    if not _FULL_ID.match(cid):
        return None
    if (root / "cgroup.controllers").exists():  # the unified (v2) hierarchy
        for rel in (f"docker/{cid}", f"system.slice/docker-{cid}.scope"):
            path = root / rel
            if (path / "cpu.stat").is_file():
                return Cgroup(path, path, True)
        return None
    for rel in (f"docker/{cid}", f"system.slice/docker-{cid}.scope"):
        for cpu_name in ("cpuacct", "cpu,cpuacct", "cpu"):
            cpu = root / cpu_name / rel
            memory = root / "memory" / rel
            if (cpu / "cpuacct.usage").is_file() and (memory / "memory.usage_in_bytes").is_file():
                return Cgroup(cpu, memory, False)
    return None


def _read(path: str) -> bytes | None:
    """A small kernel file's content (``os`` calls: ``pathlib`` and text mode cost more than
    the read itself, and a watch at 256 containers reads about 1500 files a second)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_int(path: str) -> int | None:
    data = _read(path)
    if data is None:
        return None
    try:
        return int(data)
    except ValueError:
        return None  # "max": no limit


def _stat_value(path: str, key: str) -> int | None:
    """The value of ``key`` in a flat-keyed file such as ``memory.stat`` or ``cpu.stat``."""
    data = _read(path)
    if data is None:
        return None
    needle = key.encode("ascii") + b" "
    at = 0 if data.startswith(needle) else data.find(b"\n" + needle) + 1
    if at <= 0 and not data.startswith(needle):
        return None
    end = data.find(b"\n", at)
    try:
        return int(data[at + len(needle) : end if end >= 0 else None])
    except ValueError:
        return None


_host_memory: list[int | None] = []


def host_memory() -> int | None:
    """The host's memory in bytes (``MemTotal``), the limit of an unlimited container."""
    if not _host_memory:
        total = None
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            total = None
        _host_memory.append(total)
    return _host_memory[0]


#: How long a container's memory limit, read from its file, serves (it changes only with
#: ``docker update``; the inspect cache of a watch accepts the same lag).
LIMIT_MAX_AGE_S = 30.0

_limits: dict[str, tuple[int | None, float]] = {}


def _limit(path: str, at: float) -> int | None:
    kept = _limits.get(path)
    if kept is not None and 0 <= at - kept[1] < LIMIT_MAX_AGE_S:
        return kept[0]
    limit = _read_int(path)
    _limits[path] = (limit, at)
    return limit


def read(cg: Cgroup, clock: Callable[[], float] = time.monotonic) -> Reading | None:
    """The container's counters now; ``None`` when its cgroup is gone (it stopped)."""
    at = clock()
    cpu_dir, mem_dir = str(cg.cpu), str(cg.memory)
    if cg.v2:
        usage_us = _stat_value(cpu_dir + "/cpu.stat", "usage_usec")
        if usage_us is None:
            _limits.pop(mem_dir + "/memory.max", None)
            return None
        cpu_ns = usage_us * 1000
        usage = _read_int(mem_dir + "/memory.current")
        inactive = _stat_value(mem_dir + "/memory.stat", "inactive_file")
        limit = _limit(mem_dir + "/memory.max", at)
    else:
        cpu = _read_int(cpu_dir + "/cpuacct.usage")
        if cpu is None:
            _limits.pop(mem_dir + "/memory.limit_in_bytes", None)
            return None
        cpu_ns = cpu
        usage = _read_int(mem_dir + "/memory.usage_in_bytes")
        inactive = _stat_value(mem_dir + "/memory.stat", "total_inactive_file")
        limit = _limit(mem_dir + "/memory.limit_in_bytes", at)
    used = usage
    if usage is not None and inactive is not None and inactive < usage:
        used = usage - inactive
    host = host_memory()
    if limit is None or (host is not None and limit > host):
        limit = host
    return Reading(cpu_ns, used, limit, at)


def cpu_percent(before: Reading, after: Reading) -> float:
    """Percent of one core between two readings (0.0 when nothing moved or it restarted)."""
    wall_ns = (after.at - before.at) * 1e9
    delta = after.cpu_ns - before.cpu_ns
    if wall_ns <= 0 or delta <= 0:
        return 0.0
    return round(delta / wall_ns * 100.0, 2)


class Sample(Protocol):
    def rows(self) -> list[dict[str, Any]]: ...

    def cancel(self) -> None: ...


#: The last reading of every container this process saw (``health --watch`` reuses it), and
#: where each container's files were found.
_previous: dict[str, Reading] = {}
_located: dict[tuple[str, Path], Cgroup] = {}
_previous_lock = threading.Lock()


class CgroupStatsSample:
    """CPU and memory of ``ids`` from their cgroup files (see the module text); the ids whose
    files are not found go to ``fallback`` (an API or CLI sample of those ids), started at once.

    :meth:`rows` returns one row per container still there: ``{"ID", "cpu_percent",
    "mem_used", "mem_limit"}``, the rows of ``fallback`` included.
    """

    def __init__(
        self,
        ids: Sequence[str],
        *,
        fallback: Callable[[Sequence[str]], Sample] | None = None,
        root: Path = CGROUP_ROOT,
        reader: Callable[[Cgroup], Reading | None] = read,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``root``, ``reader``, ``clock`` and ``sleep`` are the machine's; unit tests hand
        in a cgroup tree of their own and a scripted clock."""
        self.ids = tuple(str(i) for i in ids)
        self._root = root
        self._read = reader
        self._clock = clock
        self._sleep = sleep
        self._groups: dict[str, Cgroup] = {}
        self._first: dict[str, Reading] = {}
        missing: list[str] = []
        now = clock()
        for cid in self.ids:
            cg = _located.get((cid, root))
            if cg is None:
                cg = locate(cid, root)
            if cg is not None and self._usable(_previous.get(cid), now):
                # the previous refresh's reading is the first one: one reading here
                _located[(cid, root)] = cg
                self._groups[cid] = cg
                continue
            reading = reader(cg) if cg is not None else None
            if cg is None or reading is None:
                _located.pop((cid, root), None)
                missing.append(cid)
                continue
            _located[(cid, root)] = cg
            self._groups[cid] = cg
            self._first[cid] = reading
        self.missing = tuple(missing)
        self._fallback = fallback(missing) if missing and fallback is not None else None

    @staticmethod
    def _usable(prev: Reading | None, now: float) -> bool:
        return prev is not None and now - prev.at <= PREVIOUS_MAX_AGE_S

    def rows(self) -> list[dict[str, Any]]:
        baselines: dict[str, Reading] = {}
        for cid in self._groups:
            with _previous_lock:
                prev = _previous.get(cid)
            first = self._first.get(cid)
            # the previous refresh's reading, unless this sample took its own
            chosen = first if first is not None else prev
            if chosen is not None:
                baselines[cid] = chosen
        if baselines:  # every window at least MIN_WINDOW_S long
            newest = max(b.at for b in baselines.values())
            wait = MIN_WINDOW_S - (self._clock() - newest)
            if wait > 0:
                self._sleep(wait)
        out: list[dict[str, Any]] = []
        for cid, cg in self._groups.items():
            after = self._read(cg)
            before = baselines.get(cid)
            if after is None or before is None:
                _located.pop((cid, self._root), None)
                continue  # gone meanwhile
            with _previous_lock:
                _previous[cid] = after
            out.append(
                {
                    "ID": cid,
                    "cpu_percent": cpu_percent(before, after),
                    "mem_used": after.mem_used,
                    "mem_limit": after.mem_limit,
                }
            )
        if self._fallback is not None:
            out.extend(self._fallback.rows())
        return out

    def cancel(self) -> None:
        if self._fallback is not None:
            self._fallback.cancel()
