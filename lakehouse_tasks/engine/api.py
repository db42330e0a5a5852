"""CPU and memory of many containers from the Docker engine's API over its unix socket.

The one direct engine API request of the package (docs/ARCHITECTURE.md names it with its
figure, the health snapshot with resources in docs/PERFORMANCE.md): ``docker stats
--no-stream`` pauses 1.5 s before it prints and waits for two samples; here every running
container is asked at once for one ``one-shot`` sample (``GET /containers/{id}/stats``). The
engine samples all its subscribers together once a second (its stats collector), so one
round of requests takes at most about a second, whatever the number of containers.

CPU is a difference of two samples, computed as ``docker stats`` does
(``(cpu delta / system delta) * online CPUs * 100``). The earlier sample is the previous one
of the same container, when it is recent: the previous refresh of ``health --watch``, or the
last snapshot of the project in another process (kept in a state file, at most
:data:`PREVIOUS_MAX_AGE_S` old). Without one a second round is taken a collector tick later.
Memory is the usage without the page cache, as ``docker stats`` shows it.

Only a local unix socket is used (``DOCKER_HOST`` unset or ``unix://``, no ``--context`` /
``--host`` in the docker command, no ``DOCKER_CONTEXT``); otherwise :func:`socket_path` is
``None`` and the caller falls back to the CLI. Requests are counted in :data:`REQUESTS`.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import write_atomic

DEFAULT_SOCKET = "/var/run/docker.sock"
#: A previous sample older than this is not used for CPU (a second round is taken instead).
PREVIOUS_MAX_AGE_S = 120.0
#: Seconds a request may take (the engine answers within one collector tick, 1 s, when it is
#: not overloaded; `docker stats` itself took 79 s on this machine at a load average of 84).
REQUEST_TIMEOUT_S = 300.0
#: Requests in flight at once (all must wait for the same collector tick).
MAX_PARALLEL = 512
#: Inspect requests in flight at once (the engine answers each in a few milliseconds; for 256
#: containers on the loaded test engine 8 to 32 side by side took 0.1-1.2 s, one by one 0.7-1.3 s).
INSPECT_PARALLEL = 16


class _Requests:
    """How many API requests this process made (tests and benchmarks read it)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.count += n


REQUESTS = _Requests()

#: What a request raises when the socket refused it or broke: the caller asks the CLI instead
#: (it says the same, slower). Any other ``OSError`` (a timeout, an HTTP error) is the engine's
#: own trouble: :func:`.executor.api_failure`.
SOCKET_REFUSED: tuple[type[OSError], ...] = (ConnectionError, FileNotFoundError, PermissionError)


def local_socket(docker_cmd: Sequence[str] = ()) -> str | None:
    """The unix socket of the engine the docker CLI talks to, when that engine is on this
    host; ``None`` when the CLI talks to another engine (a context, by flag, by
    ``DOCKER_CONTEXT`` or chosen with ``docker context use``; ``--host``; a tcp or ssh
    ``DOCKER_HOST``). Whether the socket is there is not asked."""
    if any(str(a) in ("--context", "-c", "--host", "-H") for a in docker_cmd[1:]):
        return None
    if os.environ.get("DOCKER_CONTEXT"):
        return None
    host = os.environ.get("DOCKER_HOST", "")
    if host:
        return host[len("unix://") :] if host.startswith("unix://") else None
    return DEFAULT_SOCKET if _current_context() in ("", "default") else None


def _current_context() -> str:
    """The context ``docker context use`` chose (``currentContext`` in the CLI's config file,
    ``$DOCKER_CONFIG/config.json``); ``""`` when none is. ``DOCKER_HOST`` outranks it."""
    home = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    config = Path(home) / "config.json"  # expanduser, unlike Path.home(), never raises
    try:
        return str(json.loads(config.read_text()).get("currentContext") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def socket_path(docker_cmd: Sequence[str] = ()) -> str | None:
    """The engine's local unix socket (:func:`local_socket`) when this process may use it
    and the API is not turned off (``LAKEHOUSE_ENGINE_API=0``), else ``None``."""
    if os.environ.get("LAKEHOUSE_ENGINE_API") == "0":
        return None
    path = local_socket(docker_cmd)
    return path if path is not None and os.access(path, os.R_OK | os.W_OK) else None


def _dechunk(body: bytes) -> bytes:
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


def get_json(path: str, url: str, *, timeout: float = REQUEST_TIMEOUT_S) -> Any:
    """``GET url`` on the engine at socket ``path``; ``None`` for a 404 (a container gone).

    One HTTP/1.0 request per connection, read to its end: the engine closes the connection
    after the answer and never chunks it, so no HTTP client library is needed
    (``http.client`` costs its import at start-up and parses headers through ``email``:
    256 inspects took 0.44 s with it and 0.34 s like this, side by side, on a loaded engine).
    """
    REQUESTS.add()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(f"GET {url} HTTP/1.0\r\nHost: docker\r\n\r\n".encode("ascii"))
        chunks = []
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise ConnectionError(f"engine API {url}: no HTTP answer") from None
    if not sep:
        raise ConnectionError(f"engine API {url}: the answer ended early")
    if any(line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower()
           for line in lines[1:]):  # fmt: skip
        body = _dechunk(body)
    if status == 404:
        return None
    if status >= 400:
        raise OSError(f"engine API {url}: HTTP {status}: {body[:200]!r}")
    return json.loads(body)


@dataclass(frozen=True)
class CpuSample:
    """The counters of one stats sample that CPU is computed from."""

    total: int
    system: int
    online: int
    at: float  # time.time() of the request

    @classmethod
    def of(cls, raw: Mapping[str, Any], at: float) -> CpuSample | None:
        cpu = raw.get("cpu_stats") or {}
        usage = cpu.get("cpu_usage") or {}
        system = cpu.get("system_cpu_usage")
        if system is None or usage.get("total_usage") is None:
            return None
        online = int(cpu.get("online_cpus") or len(usage.get("percpu_usage") or []) or 1)
        return cls(int(usage["total_usage"]), int(system), online, at)


def cpu_percent(before: CpuSample, after: CpuSample) -> float:
    """``docker stats``' CPU figure between two samples (0.0 when nothing moved)."""
    cpu_delta = after.total - before.total
    system_delta = after.system - before.system
    if system_delta <= 0 or cpu_delta <= 0:
        return 0.0
    return round(cpu_delta / system_delta * after.online * 100.0, 2)


def memory_used(raw: Mapping[str, Any]) -> int | None:
    """Memory usage without the inactive page cache (``docker stats``' own rule)."""
    mem = raw.get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None
    stats = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):  # cgroup v1, then v2
        if key in stats and int(stats[key]) < int(usage):
            return int(usage) - int(stats[key])
    return int(usage)


#: The last sample of every container this process saw (``health --watch`` reuses it).
_previous: dict[str, CpuSample] = {}
_previous_lock = threading.Lock()


def _load_previous(state_file: Path | None) -> None:
    if state_file is None:
        return
    try:
        doc = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return
    with _previous_lock:
        for cid, v in (doc.get("samples") or {}).items():
            if cid not in _previous and isinstance(v, list) and len(v) == 4:
                _previous[cid] = CpuSample(int(v[0]), int(v[1]), int(v[2]), float(v[3]))


def _save_previous(state_file: Path | None, ids: Sequence[str]) -> None:
    if state_file is None:
        return
    with _previous_lock:
        doc = {
            "samples": {
                cid: [s.total, s.system, s.online, s.at]
                for cid in ids
                if (s := _previous.get(cid)) is not None
            }
        }
    try:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(state_file, json.dumps(doc))
    except OSError:
        pass  # only a later snapshot's speed depends on it


class ApiStatsSample:
    """CPU and memory of ``ids``, sampled in a background thread (see the module text).

    The same interface as :class:`lakehouse_tasks.engine.stats.StatsSample`: :meth:`rows` waits and
    returns one row per container still there, ``{"ID", "cpu_percent", "mem_used",
    "mem_limit"}``; :meth:`cancel` abandons it.
    """

    def __init__(self, path: str, ids: Sequence[str], *, state_file: Path | None = None) -> None:
        self.ids = tuple(str(i) for i in ids)
        self._path = path
        self._state_file = state_file
        self._rows: list[dict[str, Any]] = []
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread: threading.Thread | None = None
        if self.ids:
            self._thread = threading.Thread(target=self._run, name="engine-stats", daemon=True)
            self._thread.start()

    def _round(self, ids: Sequence[str]) -> dict[str, tuple[Mapping[str, Any], float]]:
        def one(cid: str) -> tuple[str, Any, float]:
            at = time.time()
            return cid, get_json(self._path, f"/containers/{cid}/stats?stream=false&one-shot=1"), at

        found: dict[str, tuple[Mapping[str, Any], float]] = {}
        with ThreadPoolExecutor(max_workers=min(len(ids), MAX_PARALLEL)) as pool:
            for cid, raw, at in pool.map(one, ids):
                if raw and not str(raw.get("read", "")).startswith("0001-"):
                    found[cid] = (raw, at)
        return found

    def _run(self) -> None:
        try:
            _load_previous(self._state_file)
            first = self._round(self.ids)
            now = time.time()
            with _previous_lock:
                earlier = {
                    cid: prev
                    for cid in first
                    if (prev := _previous.get(cid)) is not None
                    and 0 < now - prev.at <= PREVIOUS_MAX_AGE_S
                }
            missing = [cid for cid in first if cid not in earlier]
            latest = dict(first)
            if missing and not self._cancelled:
                for cid, (raw, at) in self._round(missing).items():
                    sample = CpuSample.of(first[cid][0], first[cid][1])
                    if sample is not None:
                        earlier[cid] = sample
                    latest[cid] = (raw, at)
            rows = []
            for cid, (raw, at) in latest.items():
                after = CpuSample.of(raw, at)
                before = earlier.get(cid)
                mem = raw.get("memory_stats") or {}
                rows.append(
                    {
                        "ID": cid,
                        "cpu_percent": cpu_percent(before, after) if before and after else None,
                        "mem_used": memory_used(raw),
                        "mem_limit": int(mem["limit"]) if mem.get("limit") else None,
                    }
                )
                if after is not None:
                    with _previous_lock:
                        _previous[cid] = after
            self._rows = rows
            _save_previous(self._state_file, list(latest))
        except BaseException as exc:  # handed to the reader of rows()
            self._error = exc

    def rows(self) -> list[dict[str, Any]]:
        if self._thread is None:
            return []
        self._thread.join()
        if self._error is not None:
            raise self._error
        return list(self._rows)

    def cancel(self) -> None:
        self._cancelled = True

    def __enter__(self) -> ApiStatsSample:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cancel()


def inspect_many(path: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    """``GET /containers/{id}/json`` of every id, side by side: the objects ``docker inspect``
    prints (the CLI asks the same endpoint once per container, one after the other: 18 s for
    256 containers on the loaded test machine). A container gone meanwhile is left out."""
    if not ids:
        return []
    with ThreadPoolExecutor(max_workers=min(len(ids), INSPECT_PARALLEL)) as pool:
        found = list(pool.map(lambda cid: get_json(path, f"/containers/{cid}/json"), ids))
    return [data for data in found if isinstance(data, dict)]


def list_containers(path: str, labels: Sequence[str]) -> list[dict[str, Any]]:
    """``GET /containers/json?all=1`` filtered by ``labels`` (``key=value``), as the rows of
    ``docker ps --all --no-trunc --format '{{json .}}'`` (``ID``, ``Names``, ``State``,
    ``Status``, ``Image``, ``Labels`` as ``k=v,k=v``): the same engine request the CLI
    makes, without starting a docker process (about 40 ms of the 90 ms a ``docker ps``
    takes on a quiet machine)."""
    query = urllib.parse.quote(json.dumps({"label": list(labels)}))
    found = get_json(path, f"/containers/json?all=1&filters={query}") or []
    rows = []
    for item in found:
        item_labels = item.get("Labels") or {}
        rows.append(
            {
                "ID": str(item.get("Id", "")),
                "Names": ",".join(str(n).lstrip("/") for n in item.get("Names") or ()),
                "State": str(item.get("State", "")),
                "Status": str(item.get("Status", "")),
                "Image": str(item.get("Image", "")),
                "Labels": ",".join(f"{k}={v}" for k, v in sorted(item_labels.items())),
            }
        )
    return rows
