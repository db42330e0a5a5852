"""Health snapshots as data: status words, transitions, rendering, the call count."""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.engine import executor
from lakehouse_tasks.engine import stats as engine_stats
from lakehouse_tasks.engine.compose import ComposeProject
from lakehouse_tasks.environment import Environment
from lakehouse_tasks.errors import EngineError
from lakehouse_tasks.events import EventKind
from lakehouse_tasks.health import (
    parse_engine_time,
    parse_stats_size,
    service_health_from_inspect,
    take_snapshot,
)
from lakehouse_tasks.health_view import render_health_table
from lakehouse_tasks.project import Project
from lakehouse_tasks.schema import Schema
from lakehouse_tasks.snapshots import HealthSnapshot, ServiceHealth, derive_status, diff_snapshots
from lakehouse_tasks.stack import Stack
from lakehouse_tasks.tasks.health import exit_code_for, service_names, watch_health, watch_interval
from lakehouse_tasks.testing import FakeBackend
from lakehouse_tasks.ui import Output, render_plain

T0 = _dt.datetime(2026, 1, 1, 12, 0, tzinfo=_dt.UTC)


def row(service: str, **kw: Any) -> ServiceHealth:
    base: dict[str, Any] = {
        "service": service,
        "container": f"p-{service}-1",
        "container_id": f"id-{service}",
        "state": "running",
        "health": "healthy",
    }
    base.update(kw)
    return ServiceHealth(**base)


def snap(*rows: ServiceHealth, at: int = 0) -> HealthSnapshot:
    return HealthSnapshot(
        environment="dev",
        project="p",
        rows=tuple(rows),
        time=T0 + _dt.timedelta(seconds=at),
    )


# ---- status -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "health", "exit_code", "oneshot", "expected"),
    [
        ("running", "healthy", None, False, "healthy"),
        ("running", "unhealthy", None, False, "unhealthy"),
        ("running", "starting", None, False, "starting"),
        ("running", "none", None, False, "running"),
        ("running", "none", None, True, "starting"),
        ("exited", "none", 0, True, "exited (0)"),
        ("exited", "none", 1, True, "exited"),
        ("exited", "healthy", 0, False, "exited"),
        ("restarting", "none", None, False, "restarting"),
        ("created", "none", None, False, "starting"),
        ("missing", "none", None, False, "missing"),
    ],
)
def test_status_words(
    state: str, health: str, exit_code: int | None, oneshot: bool, expected: str
) -> None:
    assert derive_status(state, health, exit_code, oneshot=oneshot) == expected


def test_snapshot_ok_counts_finished_oneshots_as_fine() -> None:
    s = snap(
        row("minio"), row("minio-init", state="exited", health="none", exit_code=0, oneshot=True)
    )
    assert s.ok and s.summary == "2/2 healthy"
    assert exit_code_for(s) == 0


@pytest.mark.parametrize(
    "bad",
    [
        row("trino", health="unhealthy"),
        row("trino", state="missing", health="none", container="", container_id=""),
        row("trino", state="exited", health="none", exit_code=137),
        row("minio-init", state="exited", health="none", exit_code=1, oneshot=True),
    ],
)
def test_snapshot_degraded_exits_1(bad: ServiceHealth) -> None:
    s = snap(row("minio"), bad)
    assert not s.ok
    assert s.summary == "1/2 healthy"
    assert exit_code_for(s) == 1
    assert [r.service for r in s.problems] == [bad.service]


# ---- transitions ----------------------------------------------------------------------------
def test_each_transition_reported_once() -> None:
    first = snap(
        row("a"),
        row("b", health="unhealthy"),
        row("c"),
        row("d"),
        row("e"),
        row("f"),
    )
    second = snap(
        row("a", health="unhealthy"),
        row("b"),
        row("c", restart_count=1),
        row("d", state="missing", health="none", container="", container_id=""),
        row("e", state="exited", health="none", exit_code=2),
        row("f", container_id="id-f-new"),
        at=5,
    )
    events = diff_snapshots(first, second)
    assert sorted((e.service, e.kind) for e in events) == [
        ("a", EventKind.SERVICE_UNHEALTHY),
        ("b", EventKind.SERVICE_RECOVERED),
        ("c", EventKind.SERVICE_RESTARTED),
        ("d", EventKind.SERVICE_DISAPPEARED),
        ("e", EventKind.SERVICE_EXITED),
        ("f", EventKind.SERVICE_RESTARTED),
    ]
    assert all(e.environment == "dev" for e in events)
    # The same state again is not a new transition.
    third = replace(second, time=T0 + _dt.timedelta(seconds=10))
    assert diff_snapshots(second, third) == []


def test_oneshot_finishing_is_not_an_exit_event() -> None:
    before = snap(row("init", health="none", oneshot=True))
    after = snap(row("init", state="exited", health="none", exit_code=0, oneshot=True), at=5)
    assert diff_snapshots(before, after) == []


def test_new_service_appearing_is_not_an_event() -> None:
    before = snap(row("a", state="missing", health="none", container="", container_id=""))
    after = snap(row("a"), at=5)
    assert diff_snapshots(before, after) == []


# ---- parsing --------------------------------------------------------------------------------
def test_stats_sizes_and_times() -> None:
    assert parse_stats_size("1.5MiB") == int(1.5 * 1024**2)
    assert parse_stats_size("12kB") == 12000
    assert parse_stats_size("0B") == 0
    assert parse_stats_size("--") is None
    t = parse_engine_time("2026-01-01T11:59:00.123456789Z")
    assert t == _dt.datetime(2026, 1, 1, 11, 59, 0, 123456, tzinfo=_dt.UTC)
    assert parse_engine_time("0001-01-01T00:00:00Z") is None


INSPECT = {
    "Id": "c0ffee" * 10,
    "Name": "/lakehouse-dev-trino-1",
    "RestartCount": 2,
    "State": {
        "Status": "running",
        "ExitCode": 0,
        "StartedAt": "2026-01-01T11:00:00.5Z",
        "Health": {
            "Status": "unhealthy",
            "Log": [
                {"ExitCode": 0, "Output": "ok", "End": "a"},
                {"ExitCode": 1, "Output": "curl: (7) refused\n", "End": "b"},
            ],
        },
    },
    "Config": {
        "Image": "trinodb/trino:479",
        "Labels": {"com.docker.compose.service": "trino", "io.lakehouse.layer": "4"},
    },
    "HostConfig": {
        "NanoCpus": 2_000_000_000,
        "Memory": 4 * 1024**3,
        "RestartPolicy": {"Name": "unless-stopped"},
    },
    "Mounts": [{"Name": "trino-data", "Destination": "/data/trino"}],
}


def test_row_from_inspect_and_stats() -> None:
    r = service_health_from_inspect(
        INSPECT,
        stats={"CPUPerc": "12.50%", "MemUsage": "512MiB / 4GiB"},
        url="http://127.0.0.1:8086",
        now=T0,
    )
    assert (r.service, r.status, r.restart_count) == ("trino", "unhealthy", 2)
    assert r.uptime_s == pytest.approx(3599.5)
    assert r.cpu_percent == 12.5 and r.mem_used == 512 * 1024**2 and r.mem_limit == 4 * 1024**3
    assert r.cpu_limit == 2.0 and r.restart_policy == "unless-stopped"
    assert r.volumes == ("trino-data:/data/trino",)
    assert r.probes[-1].output == "curl: (7) refused"
    assert r.exit_code is None  # a running container has no exit code yet


# ---- rendering ------------------------------------------------------------------------------
def degraded() -> HealthSnapshot:
    return snap(
        service_health_from_inspect(INSPECT, now=T0),
        row("minio", cpu_percent=1.0, mem_used=1024**2, mem_limit=1024**3),
        row("dbt", state="missing", health="none", container="", container_id=""),
    )


def test_plain_table_names_every_service_and_the_summary() -> None:
    text = render_plain(render_health_table(degraded()))
    assert "\x1b[" not in text  # no colour when piped
    lines = text.splitlines()
    assert lines[0].startswith("Health of dev (p)")
    assert any(line.startswith("trino") and "unhealthy" in line for line in lines)
    assert any(line.startswith("dbt") and "missing" in line for line in lines)
    assert "1 MiB / 1 GiB" in text
    assert lines[-1] == "1/3 healthy - DEGRADED"


def test_detailed_table_shows_probes_limits_and_policy() -> None:
    text = render_plain(render_health_table(degraded(), detailed=True))
    assert "curl: (7) refused" in text
    assert "unless-stopped" in text
    assert "trinodb/trino:479" in text
    assert "cpu 0.0% of 2, mem 0% of 4 GiB" in text


def test_json_is_the_same_data() -> None:
    data = json.loads(json.dumps(degraded().to_dict()))
    assert data["ok"] is False
    assert data["summary"] == {"healthy": 1, "total": 3}
    by = {s["service"]: s for s in data["services"]}
    assert by["trino"]["status"] == "unhealthy" and by["dbt"]["status"] == "missing"
    assert by["trino"]["probes"][-1]["exit_code"] == 1


# ---- flags ----------------------------------------------------------------------------------
def test_watch_interval_and_services() -> None:
    assert watch_interval(None) is None
    assert watch_interval(True) == 5.0
    assert watch_interval("2") == 2.0
    with pytest.raises(Exception, match="--watch"):
        watch_interval("soon")
    assert service_names(["a,b", " c "]) == ["a", "b", "c"]


# ---- take_snapshot against a recorded engine ------------------------------------------------
def fake_project(tmp_path: Path, n: int) -> Project:
    env = Environment(name="dev", root=tmp_path, values={}, sources={}, schema=Schema(), files=())
    compose = ComposeProject(env=env, files=[tmp_path / "c.yaml"], project_name="p")
    project = Project(env=env, compose=compose, rehearsal=True)
    services = {
        f"s{i}": {"image": "busybox", "labels": {"io.lakehouse.layer": "1"}} for i in range(n)
    }
    project._stack = Stack.from_config({"name": "p", "services": services})  # type: ignore[attr-defined]
    return project


def fake_engine(n: int, running: int) -> Any:
    """A ``executor.run`` answering ps/inspect/stats for containers s0..s<running-1>."""

    def run(cmd: list[str], **_kw: Any) -> str:
        executor._trace(cmd)
        args = cmd[1:]
        ids = [f"{i:064x}" for i in range(running)]
        if args[0] == "ps":
            return "\n".join(
                json.dumps(
                    {"ID": ids[i], "State": "running", "Labels": f"com.docker.compose.service=s{i}"}
                )
                for i in range(running)
            )
        if args[:2] == ["container", "inspect"]:
            asked = set(args[2:])
            return json.dumps(
                [
                    {
                        "Id": ids[i],
                        "Name": f"/p-s{i}-1",
                        "State": {
                            "Status": "running",
                            "StartedAt": "2026-01-01T11:00:00Z",
                            "Health": {"Status": "healthy", "Log": []},
                        },
                        "Config": {"Labels": {"com.docker.compose.service": f"s{i}"}},
                        "HostConfig": {},
                    }
                    for i in range(running)
                    if ids[i] in asked
                ]
            )
        if args[0] == "stats":
            return "\n".join(
                json.dumps({"ID": ids[i], "CPUPerc": "1.00%", "MemUsage": "1MiB / 2GiB"})
                for i in range(running)
            )
        raise AssertionError(f"unexpected docker call {cmd}")

    return run


class SyncStats:
    """``engine_stats.StatsSample`` over the fake ``executor.run``: traced when started, answered when
    its rows are read; cancelled samples are recorded."""

    cancelled: list[tuple[str, ...]] = []

    def __init__(self, docker_cmd: list[str], ids: list[str], **_kw: Any) -> None:
        self.ids = tuple(ids)
        self.argv = [*docker_cmd, "stats", "--no-stream", "--no-trunc", "--format", "{{json .}}"]
        self.argv += list(ids)
        self.run = executor.run
        self.read = False
        if self.ids:
            executor._trace(self.argv)

    def rows(self) -> list[dict[str, Any]]:
        self.read = True
        if not self.ids:
            return []
        with monkeypatch_trace_off():
            return executor.json_lines(self.run(self.argv))

    def cancel(self) -> None:
        if self.ids and not self.read:
            SyncStats.cancelled.append(self.ids)

    def __enter__(self) -> SyncStats:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cancel()


@contextlib.contextmanager
def monkeypatch_trace_off() -> Iterator[None]:
    """The fake engine traces every command; a sample was traced when it started."""
    saved = executor._trace
    executor._trace = lambda _cmd: None  # type: ignore[assignment]
    try:
        yield
    finally:
        executor._trace = saved  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def sync_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_stats, "StatsSample", SyncStats)
    SyncStats.cancelled = []


@pytest.mark.parametrize("n", [4, 40])
def test_snapshot_call_count_is_constant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    monkeypatch.setattr(executor, "run", fake_engine(n, running=n - 1))
    project = fake_project(tmp_path, n)
    before = len(executor.CALLS)
    s = take_snapshot(project)
    calls = executor.CALLS[before:]
    assert [c[1] for c in calls].count("ps") == 1
    assert len(calls) == 3
    assert s.total == n and s.healthy == n - 1
    assert [r.service for r in s.problems] == [f"s{n - 1}"]
    assert s.by_key()["s0"].cpu_percent == 1.0


def test_a_snapshot_that_fails_stops_its_stats_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = fake_engine(3, running=3)

    def run(cmd: list[str], **kw: Any) -> str:
        if cmd[1:3] == ["container", "inspect"]:
            raise EngineError("docker container inspect failed: boom")
        return engine(cmd, **kw)

    monkeypatch.setattr(executor, "run", run)
    with pytest.raises(EngineError, match="boom"):
        take_snapshot(fake_project(tmp_path, 3))
    assert [len(ids) for ids in SyncStats.cancelled] == [3]


def test_fast_snapshot_skips_stats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "run", fake_engine(3, running=3))
    before = len(executor.CALLS)
    s = take_snapshot(fake_project(tmp_path, 3), resources=False, services=["s1"])
    assert [c[1] for c in executor.CALLS[before:]] == ["ps", "container"]
    assert [r.service for r in s.rows] == ["s1"] and s.ok


def test_unknown_service_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "run", fake_engine(2, running=2))
    with pytest.raises(Exception, match="Unknown service nope; known services: s0, s1"):
        take_snapshot(fake_project(tmp_path, 2), services=["nope"])


def test_watch_prints_a_table_and_each_event_once(tmp_path: Path, lakehouse_plugins: Any) -> None:
    lakehouse_plugins()
    project = fake_project(tmp_path, 2)
    backend = FakeBackend(
        snapshots=[
            snap(row("s0"), row("s1")),
            snap(row("s0", health="unhealthy"), row("s1"), at=1),
            snap(row("s0", health="unhealthy"), row("s1"), at=2),
        ]
    )
    buf = io.StringIO()
    out = Output(stdout=buf, stderr=io.StringIO())
    last = watch_health(
        project,
        out,
        interval=0.01,
        count=3,
        resources=False,
        services=[],
        detailed=False,
        sleep=lambda _s: None,
        take=backend.snapshot,
    )
    assert last is not None and exit_code_for(last) == 1
    assert backend.calls == [("snapshot", None)] * 3
    text = buf.getvalue()
    assert text.count("Health of dev") == 3
    assert text.count("event: ") == 1
    assert "[ERROR] dev/s0: became unhealthy" in text


def test_watch_json_lines(tmp_path: Path, lakehouse_plugins: Any) -> None:
    lakehouse_plugins()
    backend = FakeBackend(snapshots=[snap(row("s0")), snap(row("s0", restart_count=1), at=1)])
    buf = io.StringIO()
    out = Output(json_mode=True, stdout=buf, stderr=io.StringIO())
    watch_health(
        fake_project(tmp_path, 1),
        out,
        interval=0.01,
        count=2,
        resources=False,
        services=[],
        detailed=False,
        sleep=lambda _s: None,
        take=backend.snapshot,
    )
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["events"] == []
    assert [e["kind"] for e in lines[1]["events"]] == ["service.restarted"]


def test_watch_ctrl_c_is_a_clean_exit(tmp_path: Path) -> None:
    backend = FakeBackend(snapshots=[KeyboardInterrupt()])
    out = Output(stdout=io.StringIO(), stderr=io.StringIO())
    assert (
        watch_health(
            fake_project(tmp_path, 1),
            out,
            interval=1,
            count=None,
            resources=False,
            services=[],
            detailed=False,
            take=backend.snapshot,
        )
        is None
    )
    assert backend.calls == [("snapshot", None)]


def test_watch_on_a_terminal_uses_a_live_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lakehouse_plugins: Any
) -> None:
    monkeypatch.setenv("LAKEHOUSE_FORCE_TTY", "1")
    lakehouse_plugins()
    backend = FakeBackend(snapshots=[snap(row("s0")), snap(row("s0", health="unhealthy"), at=1)])
    buf = io.StringIO()
    out = Output(stdout=buf, stderr=io.StringIO())
    last = watch_health(
        fake_project(tmp_path, 1),
        out,
        interval=0.01,
        count=2,
        resources=False,
        services=[],
        detailed=False,
        sleep=lambda _s: None,
        take=backend.snapshot,
    )
    assert last is not None and not last.ok
    text = buf.getvalue()
    assert "\x1b[" in text  # styled for a terminal
    assert "became unhealthy" in text
