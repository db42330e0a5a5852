"""``health`` against the real engine: synthetic projects of busybox stand-ins."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import Context, Exit

from lakehouse_tasks.engine import api as engine_api
from lakehouse_tasks.engine import cgroups, executor
from lakehouse_tasks.engine.inspect_cache import InspectCache
from lakehouse_tasks.health import HealthSnapshot, take_snapshot
from lakehouse_tasks.project import Project, open_project
from lakehouse_tasks.tasks import health as health_task

pytestmark = pytest.mark.engine

STANDIN = "lakehouse-rehearsal/busybox:rehearsal"


from tests.conftest import remove_project, unique_project_name  # noqa: E402


def standin_services(n: int, interval: str = "1s", **extra: Any) -> dict[str, Any]:
    """``n`` long-running stand-ins with a fast healthcheck, and one one-shot."""
    services: dict[str, Any] = {
        f"svc{i:02d}": {
            "image": STANDIN,
            "environment": {"STANDIN_HTTP_PORTS": "8080", "STANDIN_SERVICE": f"svc{i:02d}"},
            "healthcheck": {
                "test": ["CMD", "curl", "-fsS", "http://localhost:8080/"],
                "interval": interval,
                "timeout": "2s",
                "retries": 1,
            },
            "labels": {"io.lakehouse.layer": "1"},
            **extra,
        }
        for i in range(n)
    }
    services["init"] = {
        "image": STANDIN,
        "environment": {"STANDIN_ONESHOT": "1", "STANDIN_SERVICE": "init"},
        "labels": {"io.lakehouse.oneshot": "true", "io.lakehouse.layer": "1"},
    }
    return services


def write_project(root: Path, name: str, services: dict[str, Any]) -> None:
    (root / "compose" / "docker-compose.yaml").write_text(
        yaml.safe_dump({"services": services}, sort_keys=False)
    )
    (root / "env" / "dev.env").write_text(f"COMPOSE_PROJECT_NAME={name}\n")


@pytest.fixture
def standin_image(request: pytest.FixtureRequest) -> str:
    """The busybox stand-in: built by the harness's ``standin_images`` when it is loaded,
    else whatever the engine already has (skip when it has none)."""
    try:
        request.getfixturevalue("standin_images")
    except pytest.FixtureLookupError:
        found = subprocess.run(["docker", "image", "inspect", STANDIN], capture_output=True)
        if found.returncode != 0:
            pytest.skip(f"{STANDIN} is not built (lakehouse rehearsal builds it)")
    return STANDIN


@pytest.fixture
def synthetic(lakehouse_project: Path, standin_image: str) -> Iterator[Callable[..., Project]]:
    """A factory: ``synthetic(n)`` starts a project of n stand-ins and returns it opened."""
    names: list[str] = []

    def start(n: int, interval: str = "1s") -> Project:
        name = unique_project_name(f"health{n}")
        names.append(name)
        write_project(lakehouse_project, name, standin_services(n, interval))
        subprocess.run(
            [
                "docker",
                "compose",
                "-p",
                name,
                "-f",
                str(lakehouse_project / "compose" / "docker-compose.yaml"),
                "up",
                "-d",
                "--quiet-pull",
            ],
            check=True,
            capture_output=True,
        )
        return open_project("dev")

    yield start
    for name in names:
        subprocess.run(
            ["docker", "compose", "-p", name, "down", "-v", "--remove-orphans"],
            capture_output=True,
        )
        remove_project(name)


def wait_ok(project: Project, timeout: float = 60) -> HealthSnapshot:
    deadline = time.monotonic() + timeout
    while True:
        snap = take_snapshot(project, resources=False)
        if snap.ok or time.monotonic() > deadline:
            return snap
        time.sleep(0.5)


@pytest.mark.parametrize("n", [16, 64])
def test_snapshot_call_count_does_not_grow_with_services(
    synthetic: Callable[[int], Project], n: int
) -> None:
    # A slow healthcheck: 64 containers probing every second would swamp a 2-CPU engine, and
    # the call count does not depend on health.
    project = synthetic(n, interval="10s")
    assert (
        project.stack.services
    )  # the merged config is read once per project, outside the snapshot
    before = len(executor.CALLS)
    requests = engine_api.REQUESTS.count
    snap = take_snapshot(project)
    calls = executor.CALLS[before:]
    # no docker process at all, at 16 as at 64 services: the container list and the inspect
    # come from the engine's API over its socket (one list request, one inspect per
    # container), CPU and memory from the containers' cgroup files on this host (or, where
    # the engine keeps them elsewhere, one or two one-shot stats requests per container).
    assert calls == [], calls
    assert 1 + n + 1 <= engine_api.REQUESTS.count - requests <= 1 + 3 * (n + 1)
    assert snap.total == n + 1
    assert not any(r.state == "missing" for r in snap.rows)
    running = [r for r in snap.rows if r.state == "running"]
    assert len(running) >= n - 1  # the one-shot may still be running
    assert all(r.cpu_percent is not None and r.mem_used for r in running)


def test_unhealthy_standin_exits_1_and_watch_reports_it_once(
    synthetic: Callable[[int], Project], capsys: pytest.CaptureFixture[str]
) -> None:
    project = synthetic(3)
    assert wait_ok(project).ok
    c = Context()
    health_task.health(c, env="dev", no_resources=True)  # all healthy: no Exit
    capsys.readouterr()

    container = project.compose.project_name + "-svc01-1"

    def flip() -> None:
        time.sleep(1.5)
        subprocess.run(
            [
                "docker",
                "exec",
                container,
                "sh",
                "-c",
                "echo unhealthy-after:0 > /tmp/standin-fault",
            ],
            check=True,
            capture_output=True,
        )

    flipper = threading.Thread(target=flip)
    flipper.start()
    with pytest.raises(Exit) as raised:
        health_task.health(c, env="dev", watch="1", count=8, json_=True, no_resources=True)
    flipper.join()
    assert raised.value.code == 1
    refreshes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(refreshes) == 8
    events = [e for r in refreshes for e in r["events"]]
    assert [(e["kind"], e["service"]) for e in events] == [("service.unhealthy", "svc01")]
    assert refreshes[0]["ok"] is True and refreshes[-1]["ok"] is False

    with pytest.raises(Exit) as again:
        health_task.health(c, env="dev", no_resources=True)
    assert again.value.code == 1
    out = capsys.readouterr()
    assert "svc01" in out.out and "unhealthy" in out.out
    assert "svc01 (unhealthy)" in out.err


def test_health_agrees_with_a_wait_that_probed_healthy(
    synthetic: Callable[..., Project],
) -> None:
    """What the restore's wait calls healthy (the service's own healthcheck, run at once with
    docker exec), `health` calls healthy at that moment too, although the engine's first check
    is a minute away; a restart since makes the engine's word count again."""
    from lakehouse_tasks.backends.compose import ComposeBackend

    project = synthetic(2, interval="60s")
    services = ["svc00", "svc01"]
    probed = ComposeBackend().wait_healthy(project, services, timeout=60)
    assert probed == set(services)
    snap = take_snapshot(project, resources=False, services=services)
    assert [r.health for r in snap.rows] == ["healthy", "healthy"]
    assert all(r.own_probe and r.ok for r in snap.rows), snap.rows
    # the engine itself has not judged yet: the record is what makes them agree
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Health.Status}}", snap.rows[0].container_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert state == "starting"
    # the command a script runs after the restore exits 0
    health_task.health(Context(), env="dev", service=services, no_resources=True)
    subprocess.run(["docker", "restart", "-t", "1", snap.rows[0].container_id], check=True,
                   capture_output=True)  # fmt: skip
    again = take_snapshot(project, resources=False, services=services).by_key()
    assert again["svc00"].status == "starting" and not again["svc00"].own_probe
    assert again["svc01"].ok


def test_cgroup_figures_agree_with_docker_stats_on_a_busy_container() -> None:
    """CPU and memory read from the cgroup files are the figures `docker stats` shows: a
    container held to half a core by its CPU limit, burning it, with 64 MiB of memory."""
    name = unique_project_name("cgroup")
    cid = subprocess.run(
        [
            "docker", "run", "-d", "--name", name, "--cpus", "0.5", "--memory", "256m",
            "--entrypoint", "/bin/busybox", STANDIN, "sh", "-c",
            "head -c 67108864 /dev/zero > /dev/shm/fill && touch /tmp/ready; while :; do :; done",
        ],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready = subprocess.run(["docker", "exec", cid, "test", "-f", "/tmp/ready"])
            if ready.returncode == 0:
                break
            time.sleep(0.5)
        time.sleep(1)
        sample = cgroups.CgroupStatsSample([cid])
        assert sample.missing == ()  # found in this engine's cgroup files
        (row,) = sample.rows()
        stats = json.loads(
            subprocess.run(
                ["docker", "stats", "--no-stream", "--format", "{{json .}}", cid],
                capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        theirs_cpu = float(stats["CPUPerc"].rstrip("%"))
        # both read a busy container and at most the half core its limit allows (the two
        # samples are seconds apart on a shared machine, so only the bounds are compared)
        assert 1.0 < row["cpu_percent"] <= 60.0, (row, stats)
        assert 1.0 < theirs_cpu <= 60.0, (row, stats)
        # 64 MiB in /dev/shm is the container's memory; the limit is the container's own
        assert 60 * 2**20 < row["mem_used"] < 90 * 2**20, (row, stats)
        assert row["mem_limit"] == 256 * 2**20
        assert stats["MemUsage"].endswith("/ 256MiB")
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)


def test_watch_inspects_only_what_changed_and_still_sees_a_stop(
    synthetic: Callable[..., Project], capsys: pytest.CaptureFixture[str]
) -> None:
    project = synthetic(4, interval="30s")
    deadline = time.monotonic() + 120
    while not wait_ok(project, timeout=5).ok and time.monotonic() < deadline:
        pass
    # the containers are less than a minute old: their list entries change every second
    # ("Up 5 seconds", "Up 6 seconds"), which is not a change of the container
    cache = InspectCache()
    first = take_snapshot(project, resources=False, inspect_cache=cache)
    assert first.ok and len(cache.asked) == 5  # four services and the one-shot
    time.sleep(1.1)
    again = take_snapshot(project, resources=False, inspect_cache=cache)
    # only the exited one-shot is asked again: nothing else changed
    oneshot = {r.container_id for r in first.rows if r.oneshot}
    assert set(cache.asked) == oneshot

    def verdicts(snap: HealthSnapshot) -> list[tuple[str, str, str, int, str]]:
        return [(r.service, r.state, r.health, r.restart_count, r.started_at) for r in snap.rows]

    assert again.ok and verdicts(again) == verdicts(first)
    # a restart is a new start: asked again, and the row shows it
    restarted = project.compose.project_name + "-svc03-1"
    subprocess.run(["docker", "restart", "-t", "1", restarted], check=True, capture_output=True)
    after_restart = take_snapshot(project, resources=False, inspect_cache=cache)
    row = after_restart.by_key()["svc03"]
    assert row.container_id in cache.asked
    assert row.started_at != first.by_key()["svc03"].started_at
    container = project.compose.project_name + "-svc02-1"
    subprocess.run(["docker", "stop", "-t", "1", container], check=True, capture_output=True)
    after = take_snapshot(project, resources=False, inspect_cache=cache)
    row = after.by_key()["svc02"]
    assert row.state == "exited" and not after.ok
    assert row.container_id in cache.asked

    # `health --watch` itself keeps one cache across its refreshes: three refreshes ask for
    # the five containers once, then only for those not running and healthy
    capsys.readouterr()
    requests = engine_api.REQUESTS.count
    with pytest.raises(Exit):
        health_task.health(
            Context(), env="dev", watch="0.2", count=3, json_=True, no_resources=True
        )
    refreshes = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(refreshes) == 3
    assert all(r["ok"] is False for r in refreshes)  # svc02 is still stopped
    # 3 lists + 5 inspects + at most 3 (svc02, the one-shot, svc03 starting) per later refresh;
    # without the cache: 3 lists + 15 inspects
    assert engine_api.REQUESTS.count - requests <= 3 + 5 + 2 * 3
