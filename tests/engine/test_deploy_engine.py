"""Deploy, lock and rollback against the real engine, on small synthetic stand-in projects.

Each test writes its own four-service project (a store with a volume, a one-shot init job, an
api depending on both, an independent web front) into tmp_path, with its own project name,
and removes everything in a finalizer.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit

from lakehouse_tasks.deploy import DeployOptions, Reporter, deploy, rollback
from lakehouse_tasks.lock import LockHeldError, acquire, lock_path
from lakehouse_tasks.project import open_project
from tests.conftest import BUSYBOX_STANDIN as BUSYBOX
from tests.conftest import container_states, synthetic_project

pytestmark = pytest.mark.engine


COMPOSE = """
x-health: &health
  test: ["CMD-SHELL", "curl -fsS http://localhost:8080/"]
  interval: 1s
  timeout: 2s
  retries: 3
services:
  store:
    image: ${STORE_IMAGE}
    environment:
      STANDIN_SERVICE: store
      STANDIN_HTTP_PORTS: "8080"
      STANDIN_DATA_DIR: /data
    volumes: ["data:/data"]
    healthcheck: *health
    labels: {io.lakehouse.layer: "1"}
  init:
    image: ${BUSYBOX_IMAGE}
    environment:
      STANDIN_SERVICE: init
      STANDIN_ONESHOT: "1"
      STANDIN_FAULT: "${INIT_FAULT:-}"
    depends_on:
      store: {condition: service_healthy}
    labels: {io.lakehouse.layer: "1", io.lakehouse.oneshot: "true"}
  api:
    image: ${BUSYBOX_IMAGE}
    environment:
      STANDIN_SERVICE: api
      STANDIN_HTTP_PORTS: "8080"
    depends_on:
      store: {condition: service_healthy}
      init: {condition: service_completed_successfully}
    healthcheck: *health
    labels: {io.lakehouse.layer: "3"}
  web:
    image: ${BUSYBOX_IMAGE}
    environment:
      STANDIN_SERVICE: web
      STANDIN_HTTP_PORTS: "8080"
      STANDIN_FAULT: "${WEB_FAULT:-}"
    healthcheck: *health
    labels: {io.lakehouse.layer: "5"}
volumes:
  data: {}
"""


def _docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


class Recorder(Reporter):
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.statuses: dict[str, list[str]] = {}

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def progress(self, rows: Any, changed: Any) -> None:
        for row in changed:
            self.statuses.setdefault(row.service, []).append(row.status)


@pytest.fixture
def synthetic(lakehouse_project: Path) -> Iterator[Callable[..., Any]]:
    """Factory: write the env (with overrides) and open the synthetic project."""
    yield from synthetic_project(lakehouse_project, COMPOSE, "deploy", STORE_IMAGE=BUSYBOX)


def _opts(**kw: Any) -> DeployOptions:
    return DeployOptions(skip_backup=True, skip_preflight=True, timeout=kw.pop("timeout", 90), **kw)


def test_deploy_from_nothing_reaches_healthy_and_prints_access_table(
    synthetic: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.health import take_snapshot
    from lakehouse_tasks.tasks.deploy import deploy as deploy_task

    synthetic()
    deploy_task(Context(), env="dev", skip_backup=True, skip_preflight=True, timeout="90")
    out, err = capsys.readouterr()
    assert "Interface" in out and "URL" in out  # the access table, on stdout
    assert "Spark UI" in out
    states = container_states(synthetic.project_name)
    assert states["init"]["State"]["Status"] == "exited"
    assert states["init"]["State"]["ExitCode"] == 0
    for service in ("store", "api", "web"):
        assert states[service]["State"]["Status"] == "running"
    # what the deploy called healthy, health calls healthy (the engine may not have run its
    # own first check yet: the deploy probes each service's healthcheck itself)
    snapshot = take_snapshot(open_project("dev", root=synthetic.root), resources=False)
    assert snapshot.ok, [(r.service, r.state, r.health) for r in snapshot.rows]
    # piped progress: one line per status change on stderr
    assert "api: healthy" in err
    assert "init: exited (0)" in err


def test_never_healthy_service_fails_the_deploy_and_healthy_ones_keep_running(
    synthetic: Any,
) -> None:
    project = synthetic(WEB_FAULT="never-healthy")
    result = deploy(project, _opts(timeout=60))
    assert not result.ok
    assert [f.service for f in result.failures] == ["web"]
    failure = result.failures[0]
    assert failure.health_log, "the last healthcheck outputs are shown"
    assert failure.logs.strip(), "the last log lines are shown"
    assert result.elapsed < 60
    from lakehouse_tasks.health import take_snapshot

    # healthy as health reports it: by the engine, or by the deploy's own run of its check
    rows = {r.service: r for r in take_snapshot(project, resources=False).rows}
    assert rows["api"].health == "healthy" and rows["api"].state == "running"
    assert container_states(synthetic.project_name)["store"]["State"]["Status"] == "running"
    assert "web" in result.summary


def test_failing_oneshot_fails_the_deploy_naming_it(
    synthetic: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.deploy import deploy as deploy_task

    synthetic(INIT_FAULT="exit:3")
    with pytest.raises(Exit) as raised:
        deploy_task(Context(), env="dev", skip_backup=True, skip_preflight=True, timeout="60")
    assert raised.value.code == 4
    err = capsys.readouterr().err
    assert "init" in err and "exited with code 3" in err
    # a failed deploy records nothing and leaves no lock
    assert not lock_path(synthetic.root, "dev").exists()


def test_concurrent_deploy_is_refused_and_stale_lock_is_broken(synthetic: Any) -> None:
    project = synthetic()
    acquire(synthetic.root, "dev", "invoke deploy (other terminal)")  # a live holder: us
    with pytest.raises(LockHeldError) as raised:
        deploy(project, _opts())
    assert raised.value.exit_code == 4
    assert "lock.release --env dev" in raised.value.message
    assert container_states(synthetic.project_name) == {}  # nothing was started

    lock_path(synthetic.root, "dev").unlink()
    dead = subprocess.Popen(["true"])
    dead.wait()
    acquire(synthetic.root, "dev", "invoke deploy (crashed)", pid=dead.pid)
    recorder = Recorder()
    result = deploy(project, _opts(), reporter=recorder)
    assert result.ok, result.summary
    assert any("broke the stale lock" in w for w in recorder.warnings)
    assert not lock_path(synthetic.root, "dev").exists()


def test_rollback_returns_to_the_previous_images(synthetic: Any) -> None:
    tag_a = f"lht-rollback/busybox:a-{uuid.uuid4().hex[:6]}"
    tag_b = f"lht-rollback/busybox:b-{uuid.uuid4().hex[:6]}"
    _docker("tag", BUSYBOX, tag_a)
    build = subprocess.run(
        ["docker", "build", "-q", "-t", tag_b, "-"],
        input=f"FROM {BUSYBOX}\nLABEL lht.variant=b\n",
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    try:
        id_a = _docker("image", "inspect", "-f", "{{.Id}}", tag_a)
        id_b = _docker("image", "inspect", "-f", "{{.Id}}", tag_b)
        assert id_a != id_b
        assert deploy(synthetic(STORE_IMAGE=tag_a), _opts()).ok
        assert container_states(synthetic.project_name)["store"]["Image"] == id_a
        assert deploy(synthetic(STORE_IMAGE=tag_b), _opts()).ok
        assert container_states(synthetic.project_name)["store"]["Image"] == id_b
        # move tag A so only the recorded id can bring the old image back
        _docker("tag", tag_b, tag_a)
        result = rollback(synthetic(STORE_IMAGE=tag_b), timeout=90)
        assert result.ok, result.summary
        assert container_states(synthetic.project_name)["store"]["Image"] == id_a
        assert result.record is not None and result.record.kind == "rollback"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag_a, tag_b], capture_output=True)
