"""The swarm backend against a real engine, on a single-node swarm the tests create and leave.

- The full dev rehearsal stack (every active service of dev: 15 services, spark-worker-2 is off
  in dev) is deployed as a stack, comes up healthy and is torn down without leftovers. Health
  timings are shortened through the environment (2 s intervals) so the six dependency steps
  take about 25 s on a 2-core machine.
- A synthetic one-service project (an HTTP stand-in with 2 replicas, start-first) gets a rolling
  update while a client polls its published port (ingress routing mesh) every 50 ms, and an
  update to a never-healthy version that swarm rolls back.

Stacks are named ``lht-...`` and removed in finalizers; the engine leaves swarm mode at the end
of the session when these tests put it there.
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit

from lakehouse_tasks.backends.swarm import SwarmBackend
from lakehouse_tasks.backends.swarm.policies import STORAGE_CONSTRAINT
from lakehouse_tasks.backends.swarm.steps import deploy_steps
from lakehouse_tasks.backends.swarm.views import take_snapshot
from lakehouse_tasks.deploy import DeployOptions, Reporter
from lakehouse_tasks.deploy import deploy as run_deploy
from lakehouse_tasks.engine import swarm as engine_swarm
from lakehouse_tasks.events import EventKind
from lakehouse_tasks.project import open_project
from lakehouse_tasks.teardown import teardown as run_teardown
from lakehouse_tasks.testing import RecordingPlugin, write_env
from tests.conftest import free_port, unique_project_name

pytestmark = pytest.mark.engine

BUSYBOX = "lakehouse-rehearsal/busybox:rehearsal"
FAST_HEALTH = {
    "HEALTHCHECK_INTERVAL": "2s",
    "HEALTHCHECK_START_PERIOD": "2s",
    "HEALTHCHECK_RETRIES": "3",
    "HEALTHCHECK_TIMEOUT": "2s",
}
FAST_HEALTH_SLOW_INIT = {**FAST_HEALTH, "HEALTHCHECK_START_PERIOD": "60s"}


def deploy_on_swarm(
    project: Any,
    *,
    services: Sequence[str] = (),
    timeout: float = 600.0,
    reporter: Any = None,
    skip_preflight: bool = True,
    skip_backup: bool = True,
) -> Any:
    """The lifecycle deploy on the swarm backend (``deploy --target swarm``)."""
    options = DeployOptions(
        services=tuple(services),
        timeout=timeout,
        skip_preflight=skip_preflight,
        skip_backup=skip_backup,
    )
    return run_deploy(project, options, backend=SwarmBackend(), reporter=reporter)


def teardown_on_swarm(project: Any, **kwargs: Any) -> Any:
    """The lifecycle teardown on the swarm backend (``teardown --target swarm``)."""
    return run_teardown(project, backend=SwarmBackend(), **kwargs)


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True).stdout.strip()


def remove_stack(name: str) -> None:
    """Remove a test stack, its containers, networks, volumes and secrets, whatever is left."""
    subprocess.run(["docker", "stack", "rm", name], capture_output=True)
    label = f"label={engine_swarm.STACK_NAMESPACE_LABEL}={name}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not _docker("ps", "-aq", "--filter", label) and not _docker(
            "network", "ls", "-q", "--filter", label
        ):
            break
        time.sleep(1)
    volumes = [v for v in _docker("volume", "ls", "-q").split() if v.startswith(f"{name}_")]
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True)
    secrets = _docker(
        "secret", "ls", "-q", "--filter", f"label={engine_swarm.SECRET_STACK_LABEL}={name}"
    )
    if secrets:
        subprocess.run(["docker", "secret", "rm", *secrets.split()], capture_output=True)


class Steps(Reporter):
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def step(self, text: str) -> None:
        self.lines.append(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def test_dev_rehearsal_stack_comes_up_healthy_and_leaves_nothing(
    single_node_swarm: None, rehearsal_project: Any, lakehouse_plugins: Any
) -> None:
    recorder = RecordingPlugin()
    lakehouse_plugins(recorder)
    # Swarm kills a task whose healthcheck fails past its start period, and dev's restart
    # policy (none) never replaces it: with a 2 s start period a PostgreSQL still running
    # initdb on a loaded machine was killed and its service stayed 0/1. A start period only
    # delays failures, a passing check counts at once, so 60 s costs nothing when all is well.
    project = rehearsal_project("dev", hint="swarm", **FAST_HEALTH_SLOW_INIT)
    name = project.compose.project_name
    try:
        started = time.monotonic()
        steps = Steps()
        result = deploy_on_swarm(project, skip_preflight=True, timeout=300, reporter=steps)
        took = time.monotonic() - started
        assert result.ok, result.summary
        deploy_lines = [line for line in steps.lines if line.startswith("step ")]
        assert len(deploy_lines) == len(deploy_steps(project.stack, sorted(project.stack.active)))
        assert deploy_lines[-1].endswith("--prune")

        snapshot = take_snapshot(project)
        assert snapshot.ok, [(r.service, r.status) for r in snapshot.problems]
        assert {r.service for r in snapshot.rows} == set(project.stack.active)
        statuses = {r.service: r.status for r in snapshot.rows}
        assert statuses["minio-init"] == "exited (0)"
        assert statuses["metastore-db"] == "healthy"
        # Stateful services were pinned to the storage label; the update orders differ.
        spec = engine_swarm.stack_services(["docker"], name)
        by_name = {s["Spec"]["Name"]: s["Spec"] for s in spec}
        db = by_name[f"{name}_metastore-db"]
        assert STORAGE_CONSTRAINT.replace(" ", "") in [
            c.replace(" ", "") for c in db["TaskTemplate"]["Placement"]["Constraints"]
        ]
        assert db["UpdateConfig"]["Order"] == "stop-first"
        assert by_name[f"{name}_trino"]["UpdateConfig"]["Order"] == "start-first"

        kinds = [e.kind for e in recorder.events]
        assert EventKind.DEPLOY_STARTED in kinds and EventKind.DEPLOY_SUCCEEDED in kinds

        torn = teardown_on_swarm(project, remove_volumes=False)
        assert torn.ok and torn.volumes_kept and not torn.volumes_removed
        assert not engine_swarm.stack_services(["docker"], name)
        assert not engine_swarm.stack_containers(["docker"], name)
        assert not engine_swarm.stack_networks(["docker"], name)
        print(f"\nswarm dev rehearsal: deploy {took:.1f}s, {len(snapshot.rows)} services")
    finally:
        remove_stack(name)


# ---- a synthetic replicated service ---------------------------------------------------------
COMPOSE = """
services:
  web:
    image: ${WEB_IMAGE}
    environment:
      STANDIN_SERVICE: web
      STANDIN_HTTP_PORTS: "8080"
      STANDIN_HTTP_PATHS_8080: "/health"
      STANDIN_FAULT: "${WEB_FAULT:-none}"
      WEB_VERSION: "${WEB_VERSION:-1}"
    ports: ["${WEB_PORT}:8080"]
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://localhost:8080/health"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 1s
    restart: unless-stopped
    deploy:
      replicas: 2
    labels: {io.lakehouse.layer: "6"}
"""


@pytest.fixture
def web_stack(lakehouse_project: Path, single_node_swarm: None) -> Iterator[Callable[..., Any]]:
    """Factory: write the env with ``overrides`` and open the synthetic project (rehearsal:
    10 s monitor window, no reservations)."""
    name = unique_project_name("swarm")
    port = free_port()
    (lakehouse_project / "compose" / "docker-compose.yaml").write_text(COMPOSE)

    def make(**overrides: str) -> Any:
        values = {"COMPOSE_PROJECT_NAME": name, "WEB_IMAGE": BUSYBOX, "WEB_PORT": str(port)}
        write_env(lakehouse_project, "dev", {**values, **overrides})
        project = open_project("dev", root=lakehouse_project)
        project.rehearsal = True
        return project

    make.port = port  # type: ignore[attr-defined]
    make.stack = name  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        remove_stack(name)


class Poller(threading.Thread):
    """GET the published port every 50 ms; count answers and failures."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/health"
        self.ok = 0
        self.failed: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    response.read()
                    self.ok += 1
            except Exception as exc:  # every failure counts, whatever its kind
                self.failed.append(f"{time.strftime('%X')} {exc}")
            time.sleep(0.05)


def _serving(port: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
            return True
        except Exception:
            time.sleep(0.2)
    return False


def test_rolling_update_serves_every_request(web_stack: Any) -> None:
    """The update itself is always checked; the zero-failure check needs swarm's routing mesh
    (IPVS), which the project's test machines lack (no ip_vs module: the published port and
    the service VIP never answer); there the poller part is skipped, saying so."""
    first = deploy_on_swarm(web_stack(), skip_preflight=True, timeout=120)
    assert first.ok, first.summary
    mesh = _serving(web_stack.port)

    poller = Poller(web_stack.port)
    if mesh:
        poller.start()
        time.sleep(1)
    steps = Steps()
    started = time.monotonic()
    try:
        result = deploy_on_swarm(
            web_stack(WEB_VERSION="2"),
            services=["web"],
            skip_preflight=True,
            timeout=180,
            reporter=steps,
        )
    finally:
        if mesh:
            time.sleep(1)
            poller.stop.set()
            poller.join()
    took = time.monotonic() - started
    assert result.ok, result.summary
    assert result.kind == "update"
    replaced = [line for line in steps.lines if "shut down (replaced)" in line]
    healthy = [line for line in steps.lines if "running and healthy" in line]
    assert len(replaced) == 2 and len(healthy) >= 2, steps.lines
    env = _docker(
        "service",
        "inspect",
        f"{web_stack.stack}_web",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
    )
    assert "WEB_VERSION=2" in env
    snapshot = take_snapshot(web_stack(WEB_VERSION="2"))
    assert snapshot.ok and {r.service for r in snapshot.rows} == {"web", "web-2"}
    print(f"\nrolling update: {took:.1f}s; steps: {steps.lines}")
    if not mesh:
        pytest.skip(
            "update verified; zero-failure polling not run: the routing mesh does not answer "
            "on this machine (no IPVS)"
        )
    assert poller.failed == [], poller.failed[:5]
    assert poller.ok > 50
    print(f"rolling update: {poller.ok} requests, 0 failed")


def test_never_healthy_update_is_rolled_back_with_event_and_exit_4(
    web_stack: Any, lakehouse_plugins: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RecordingPlugin()
    lakehouse_plugins(recorder)
    first = deploy_on_swarm(web_stack(), skip_preflight=True, timeout=120)
    assert first.ok, first.summary

    steps = Steps()
    started = time.monotonic()
    result = deploy_on_swarm(
        web_stack(WEB_FAULT="never-healthy"),
        services=["web"],
        skip_preflight=True,
        timeout=180,
        reporter=steps,
    )
    took = time.monotonic() - started
    assert not result.ok
    assert "rolled it back" in result.failures[0].reason
    rollbacks = [e for e in recorder.events if e.kind == EventKind.ROLLBACK]
    assert len(rollbacks) == 1 and rollbacks[0].service == "web"
    assert any(e.kind == EventKind.DEPLOY_FAILED for e in recorder.events)
    # Swarm restored the previous spec: the service runs without the fault, 2/2 healthy.
    env = _docker(
        "service",
        "inspect",
        f"{web_stack.stack}_web",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
    )
    assert "never-healthy" not in env
    snapshot = take_snapshot(web_stack())
    assert snapshot.ok and {r.service for r in snapshot.rows} == {"web", "web-2"}
    print(f"\nrollback: detected and completed in {took:.1f}s")

    # Through the task: the same failure is exit 4 (DEPLOY_FAILED).
    from lakehouse_tasks.tasks.deploy import deploy as deploy_task

    monkeypatch.setenv("LAKEHOUSE_HOME", str(web_stack().env.root))
    monkeypatch.delenv("LAKEHOUSE_REHEARSAL", raising=False)
    web_stack(WEB_FAULT="never-healthy", WEB_VERSION="3")
    with pytest.raises(Exit) as caught:
        deploy_task(
            Context(),
            env="dev",
            target="swarm",
            services="web",
            skip_preflight=True,
            skip_backup=True,
            timeout="180",
        )
    assert caught.value.code == 4


# ---- zero downtime without IPVS: DNS round robin on an overlay network ----------------------
DNSRR_COMPOSE = """
services:
  web:
    image: ${WEB_IMAGE}
    environment:
      STANDIN_SERVICE: web
      STANDIN_HTTP_PORTS: "8080"
      STANDIN_HTTP_PATHS_8080: "/health"
      STANDIN_VERSION: "v${WEB_VERSION:-1}"
      STANDIN_STOP_DELAY: "${WEB_STOP_DELAY:-0}"
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://localhost:8080/health"]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 1s
    stop_grace_period: 15s
    restart: unless-stopped
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
    labels: {io.lakehouse.layer: "6"}
"""

#: The client: a GET every 50 ms through swarm's DNS (the service name resolves to the
#: addresses of its running tasks), one OK/FAIL line per request on its log. ``timeout 3``
#: rather than ``wget -T 3``: the stand-in's static busybox wget crashes with ``-T``.
CLIENT_LOOP = (
    "while :; do "
    'if out=$(timeout 3 wget -q -O- http://web:8080/version 2>&1); then echo "OK $out"; '
    'else echo "FAIL $(date +%T) $out"; fi; '
    "sleep 0.05; done"
)


def test_rolling_update_serves_every_request_over_dnsrr(
    lakehouse_project: Path, single_node_swarm: None, standin_images: dict[str, str]
) -> None:
    """The zero-downtime proof that needs no IPVS: the service uses ``endpoint_mode: dnsrr``
    on the stack's attachable overlay network, and a client container on that network polls
    ``http://web:8080/version`` every 50 ms during a start-first rolling update through the
    tool. Every request must succeed, and the client must see the old and the new version."""
    image = standin_images["busybox"]
    name = unique_project_name("dnsrr")
    client = f"{name}-client"
    (lakehouse_project / "compose" / "docker-compose.yaml").write_text(DNSRR_COMPOSE)

    def make(**overrides: str) -> Any:
        values = {"COMPOSE_PROJECT_NAME": name, "WEB_IMAGE": image, "WEB_STOP_DELAY": "3"}
        write_env(lakehouse_project, "dev", {**values, **overrides})
        project = open_project("dev", root=lakehouse_project)
        project.rehearsal = True
        return project

    try:
        first = deploy_on_swarm(make(), skip_preflight=True, timeout=120)
        assert first.ok, first.summary
        subprocess.run(
            ["docker", "run", "-d", "--name", client, "--network", f"{name}_default",
             "--entrypoint", "sh", image, "-c", CLIENT_LOOP],
            check=True, capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while "OK v1" not in _docker("logs", client) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "OK v1" in _docker("logs", client), _docker("logs", client)[-500:]

        steps = Steps()
        started = time.monotonic()
        result = deploy_on_swarm(
            make(WEB_VERSION="2"), services=["web"], skip_preflight=True, timeout=180,
            reporter=steps,
        )  # fmt: skip
        took = time.monotonic() - started
        assert result.ok, result.summary
        time.sleep(2)  # a few more requests, all to the new tasks
        subprocess.run(["docker", "stop", "-t", "1", client], capture_output=True)
        lines = subprocess.run(
            ["docker", "logs", client], capture_output=True, text=True
        ).stdout.splitlines()
        failed = [line for line in lines if not line.startswith("OK ")]
        versions = {line.split()[1] for line in lines if line.startswith("OK ")}
        replaced = [line for line in steps.lines if "shut down (replaced)" in line]
        assert len(replaced) == 2, steps.lines
        assert failed == [], failed[:10]
        assert versions == {"v1", "v2"}, versions
        assert lines[-1].startswith("OK v2"), lines[-5:]
        print(
            f"\ndnsrr rolling update: {took:.1f}s, {len(lines)} requests, 0 failed, "
            f"versions seen {sorted(versions)}"
        )
    finally:
        subprocess.run(["docker", "rm", "-f", client], capture_output=True)
        remove_stack(name)
