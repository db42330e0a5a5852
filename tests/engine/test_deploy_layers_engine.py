"""The deploy starts each service itself once its dependencies pass their own healthchecks.

A four-service chain on the busybox stand-in: ``db`` (slow to become ready) -> the one-shot
``migrate`` (``service_healthy``) -> ``api`` (``service_completed_successfully`` and
``service_healthy``) -> ``web`` (``service_healthy``). Every healthcheck interval is five
minutes, so the engine runs no check during the test: whatever gates a dependent is the
tool's own run of the dependency's healthcheck command. Each healthcheck leaves a marker on a
shared volume when it passes, and each dependent refuses to start (exits 7) unless the
markers of its dependencies are there: a deploy that succeeds started nothing too early.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.deploy import DeployOptions, Reporter, deploy
from lakehouse_tasks.project import open_project
from tests.conftest import container_states, synthetic_project

pytestmark = pytest.mark.engine


COMPOSE = """
x-slow: &slow
  interval: 300s
  timeout: 5s
  retries: 3
services:
  db:
    image: ${BUSYBOX_IMAGE}
    environment:
      STANDIN_SERVICE: db
      STANDIN_HTTP_PORTS: "8080"
      STANDIN_FAULT: "${DB_FAULT:-slow-start:3}"
    volumes: ["shared:/shared"]
    healthcheck:
      <<: *slow
      test: ["CMD-SHELL", "curl -fsS http://localhost:8080/ && touch /shared/db-passed"]
  migrate:
    image: ${BUSYBOX_IMAGE}
    entrypoint: ["/bin/sh", "-c"]
    command: ["test -f /shared/db-passed || exit 7; touch /shared/migrated; exit ${MIGRATE_EXIT:-0}"]
    volumes: ["shared:/shared"]
    depends_on:
      db: {condition: service_healthy}
    labels: {io.lakehouse.oneshot: "true"}
  api:
    image: ${BUSYBOX_IMAGE}
    entrypoint: ["/bin/sh", "-c"]
    command: ["test -f /shared/db-passed && test -f /shared/migrated || exit 7; exec /standin/run"]
    environment:
      STANDIN_SERVICE: api
      STANDIN_HTTP_PORTS: "8080"
      STANDIN_FAULT: "slow-start:1"
    volumes: ["shared:/shared"]
    depends_on:
      db: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
    healthcheck:
      <<: *slow
      test: ["CMD-SHELL", "curl -fsS http://localhost:8080/ && touch /shared/api-passed"]
  web:
    image: ${BUSYBOX_IMAGE}
    entrypoint: ["/bin/sh", "-c"]
    command: ["test -f /shared/api-passed || exit 7; exec /standin/run"]
    environment:
      STANDIN_SERVICE: web
      STANDIN_HTTP_PORTS: "8080"
    volumes: ["shared:/shared"]
    depends_on:
      api: {condition: service_healthy}
    healthcheck:
      <<: *slow
      test: ["CMD-SHELL", "curl -fsS http://localhost:8080/"]
volumes:
  shared: {}
"""


def _docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


class Recorder(Reporter):
    def __init__(self) -> None:
        self.statuses: dict[str, list[str]] = {}
        self.steps: list[str] = []

    def step(self, text: str) -> None:
        self.steps.append(text)

    def progress(self, rows: Any, changed: Any) -> None:
        for row in changed:
            self.statuses.setdefault(row.service, []).append(row.status)


@pytest.fixture
def chain(lakehouse_project: Path) -> Iterator[Callable[..., Any]]:
    yield from synthetic_project(lakehouse_project, COMPOSE, "layers")


def _opts() -> DeployOptions:
    return DeployOptions(skip_backup=True, skip_preflight=True, timeout=120)


def test_chain_comes_up_in_dependency_order_on_the_own_healthchecks(chain: Any) -> None:
    from lakehouse_tasks.health import take_snapshot

    project = chain()
    recorder = Recorder()
    result = deploy(project, _opts(), reporter=recorder)
    assert result.ok, (result.summary, [(f.service, f.reason, f.logs) for f in result.failures])
    assert any(step.startswith("creating: docker compose create") for step in recorder.steps)
    states = container_states(chain.project_name)
    # every dependent found its dependencies' passing healthchecks when it started (else it
    # would have exited 7), and the one-shot ran once, successfully
    assert states["migrate"]["State"]["ExitCode"] == 0
    for service in ("db", "api", "web"):
        assert states[service]["State"]["Status"] == "running"
        assert states[service]["State"]["Restarting"] is False
    # the order of the starts is the dependency order
    started = {s: d["State"]["StartedAt"] for s, d in states.items()}
    assert started["db"] < started["migrate"]
    assert states["migrate"]["State"]["FinishedAt"] <= started["api"] < started["web"]
    # the engine has run no check of its own yet: the tool's own probes gated the starts ...
    assert states["api"]["State"]["Health"]["Status"] == "starting"
    # ... and health, asked right after, agrees with the deploy
    snapshot = take_snapshot(open_project("dev", root=project.env.root), resources=False)
    rows = {row.service: row for row in snapshot.rows}
    assert snapshot.ok, [(r.service, r.state, r.health) for r in snapshot.rows]
    assert rows["web"].health == "healthy" and rows["web"].own_probe
    # the live view followed each service to healthy
    assert recorder.statuses["web"][-1] == "healthy"
    assert recorder.statuses["migrate"][-1] == "exited (0)"

    # a second deploy recreates nothing (compose create made the containers up would make)
    ids = {s: d["Id"] for s, d in states.items()}
    again = deploy(chain(), _opts(), reporter=Recorder())
    assert again.ok, again.summary
    assert {s: d["Id"] for s, d in container_states(chain.project_name).items()} == ids


def test_a_failing_dependency_stops_the_deploy_naming_it(chain: Any) -> None:
    project = chain(MIGRATE_EXIT="3")
    result = deploy(project, _opts(), reporter=Recorder())
    assert not result.ok
    assert [f.service for f in result.failures] == ["migrate"]
    assert "code 3" in result.failures[0].reason
    assert "migrate" in result.summary
    states = container_states(chain.project_name)
    # what depends on it was never started; what it depends on keeps running
    assert states["api"]["State"]["Status"] == "created"
    assert states["web"]["State"]["Status"] == "created"
    assert states["db"]["State"]["Status"] == "running"


def test_a_crashing_first_layer_fails_the_deploy_at_once(chain: Any) -> None:
    project = chain(DB_FAULT="exit:5")
    result = deploy(project, _opts(), reporter=Recorder())
    assert not result.ok
    assert [f.service for f in result.failures] == ["db"]
    assert "code 5" in result.failures[0].reason
    assert result.failures[0].logs.strip(), "the last log lines are shown"
    assert container_states(chain.project_name)["migrate"]["State"]["Status"] == "created"
