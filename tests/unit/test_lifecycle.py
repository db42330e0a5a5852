"""The lifecycle rules hold on every target: written once above the backends, tested here on
a FakeBackend and through the tasks (the engine proves it in test_backend_conformance_engine).

Each swarm test here failed before the target became a backend object: the swarm path had its
own deploy and teardown, which skipped the prod fresh-backup rule, the recovery of services an
interrupted backup left stopped, dropped --pull, and sent events without the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit

from lakehouse_tasks.deploy import DeployOptions, deploy
from lakehouse_tasks.events import EventKind
from lakehouse_tasks.project import open_project
from lakehouse_tasks.stack import Stack
from lakehouse_tasks.tasks.deploy import deploy as deploy_task
from lakehouse_tasks.tasks.teardown import teardown as teardown_task
from lakehouse_tasks.teardown import teardown
from lakehouse_tasks.testing import FakeBackend, RecordingPlugin, write_env

CONFIG: dict[str, Any] = {
    "name": "lakehouse-dev",
    "services": {
        "db": {"image": "postgres:16", "labels": {"io.lakehouse.layer": "1"}},
        "web": {"image": "web:1", "labels": {"io.lakehouse.layer": "5"}, "depends_on": {"db": {}}},
    },
}


def _open(root: Path, name: str) -> Any:
    (root / "compose").mkdir(exist_ok=True)
    (root / "compose" / "docker-compose.yaml").write_text("services: {}\n")
    write_env(root, name, {"COMPOSE_PROJECT_NAME": f"lakehouse-{name}"})
    project = open_project(name, root=root, strict=False)
    project._stack = Stack.from_config(CONFIG)  # no `compose config` call
    return project


@pytest.fixture
def recorder(lakehouse_plugins: Any) -> RecordingPlugin:
    plugin = RecordingPlugin()
    lakehouse_plugins(("recorder", plugin))
    return plugin


# ---- teardown ---------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["flag", "DEPLOY_TARGET"])
def test_swarm_teardown_of_prod_volumes_needs_a_fresh_backup(
    lakehouse_project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    _open(lakehouse_project, "prod")
    if how == "DEPLOY_TARGET":
        monkeypatch.setenv("DEPLOY_TARGET", "swarm")
    target = "swarm" if how == "flag" else None
    with pytest.raises(Exit) as raised:
        teardown_task(Context(), env="prod", remove_volumes=True, yes=True, target=target)
    assert raised.value.code == 7
    err = capsys.readouterr().err
    assert "Refusing to remove the volumes of prod: it has no backup" in err
    assert "--force-without-backup" in err


@pytest.mark.parametrize("name", ["compose", "swarm"])
def test_teardown_rules_and_event_are_the_same_on_both_targets(
    lakehouse_project: Path, recorder: RecordingPlugin, name: str
) -> None:
    project = _open(lakehouse_project, "prod")
    backend = FakeBackend(name=name, volumes=["lakehouse-prod_db"])
    with pytest.raises(Exception, match="has no backup"):
        teardown(project, backend=backend, remove_volumes=True, yes=True)
    assert backend.volumes == ["lakehouse-prod_db"]  # nothing was removed
    result = teardown(
        project, backend=backend, remove_volumes=True, yes=True, force_without_backup=True
    )
    assert result.ok and result.volumes_removed == ["lakehouse-prod_db"]
    assert result.backup == "no backup checked (--force-without-backup)"
    (call,) = [c for c in recorder.called("event")]
    assert call.kwargs["event"].kind == EventKind.TEARDOWN
    assert call.kwargs["env"] is project.env
    assert call.kwargs["event"].details["target"] == name


# ---- deploy -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["compose", "swarm"])
def test_deploy_events_carry_the_resolved_environment_on_both_targets(
    lakehouse_project: Path, recorder: RecordingPlugin, name: str
) -> None:
    project = _open(lakehouse_project, "dev")
    backend = FakeBackend(name=name, images={"web": "sha256:web"})
    options = DeployOptions(services=("web",), skip_preflight=True, skip_backup=True)
    result = deploy(project, options, backend=backend)
    assert result.ok
    # compose records the deployment in the history, with the image the backend runs
    if name == "compose":
        assert result.record is not None and result.record.images == {"web": "sha256:web"}
    else:
        assert result.record is None
    kinds = [(c.kwargs["event"].kind, c.kwargs["env"]) for c in recorder.called("event")]
    assert kinds == [
        (EventKind.DEPLOY_STARTED, project.env),
        (EventKind.DEPLOY_SUCCEEDED, project.env),
    ]
    assert recorder.called("pre_deploy") and recorder.called("post_deploy")


def test_a_swarm_deploy_first_starts_what_an_interrupted_backup_left_stopped(
    lakehouse_project: Path, recorder: RecordingPlugin
) -> None:
    project = _open(lakehouse_project, "dev")
    state = lakehouse_project / ".lakehouse" / "stopped-lakehouse-dev-1-1.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(
        json.dumps({"services": ["db"], "target": "swarm", "replicas": {"db": 1}, "pid": 0})
    )
    backend = FakeBackend(name="swarm")
    options = DeployOptions(skip_preflight=True, skip_backup=True)
    deploy(project, options, backend=backend)
    assert backend.calls[:2] == [("ready", []), ("start", ["db"])]
    assert not state.exists()


def test_a_failed_swarm_deploy_is_reported_with_env_and_no_history(
    lakehouse_project: Path, recorder: RecordingPlugin
) -> None:
    project = _open(lakehouse_project, "dev")
    backend = FakeBackend(name="swarm", fail=["web"])
    result = deploy(project, DeployOptions(skip_preflight=True, skip_backup=True), backend=backend)
    assert not result.ok and result.record is None
    assert [f.service for f in result.failures] == ["web"]
    (failed,) = [
        c for c in recorder.called("event") if c.kwargs["event"].kind == EventKind.DEPLOY_FAILED
    ]
    assert failed.kwargs["env"] is project.env


@pytest.mark.parametrize(
    ("target", "flag", "value"), [("swarm", "pull", True), ("compose", "label_node", True)]
)
def test_a_flag_the_target_cannot_honour_is_refused_with_exit_2(
    capsys: pytest.CaptureFixture[str], target: str, flag: str, value: bool
) -> None:
    with pytest.raises(Exit) as raised:
        deploy_task(Context(), env="dev", target=target, **{flag: value})
    assert raised.value.code == 2
    option = "--" + flag.replace("_", "-")
    assert f"{option} is not supported with --target {target}" in capsys.readouterr().err


def test_the_lifecycle_refuses_an_unsupported_flag_too(lakehouse_project: Path) -> None:
    project = _open(lakehouse_project, "dev")
    backend = FakeBackend(name="swarm")
    with pytest.raises(Exception, match="--pull is not supported"):
        deploy(project, DeployOptions(pull=True), backend=backend)
    assert backend.calls == []  # refused before anything ran


def test_an_unknown_target_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exit) as raised:
        deploy_task(Context(), env="dev", target="k8s")
    assert raised.value.code == 2
    assert "Unknown deploy target 'k8s'" in capsys.readouterr().err
