"""Teardown against the real engine: volumes kept by default, removed only when confirmed."""

from __future__ import annotations

from typing import Any

import pytest

# tests/engine is not a package: pytest puts this folder on sys.path, so the sibling module
# imports by name; its ``synthetic`` fixture is shared by assignment.
import test_deploy_engine as base
from invoke import Context, Exit

from lakehouse_tasks.deploy import deploy
from lakehouse_tasks.tasks.teardown import teardown as teardown_task
from lakehouse_tasks.teardown import teardown
from tests.conftest import container_states

_docker, _opts = base._docker, base._opts
_states = container_states
synthetic = base.synthetic

pytestmark = pytest.mark.engine


def _volumes(project_name: str) -> list[str]:
    label = f"label=com.docker.compose.project={project_name}"
    return _docker("volume", "ls", "-q", "--filter", label).split()


def _container(project_name: str, service: str) -> str:
    return str(_states(project_name)[service]["Name"]).lstrip("/")


def test_teardown_keeps_volumes_and_their_data_survives_a_redeploy(synthetic: Any) -> None:
    project = synthetic()
    assert deploy(project, _opts()).ok
    store = _container(synthetic.project_name, "store")
    _docker("exec", store, "sh", "-c", "echo kept-across-teardown > /data/marker.txt")

    result = teardown(project, is_tty=False)
    assert result.ok
    assert result.containers_left == []
    assert _states(synthetic.project_name) == {}
    assert result.volumes_kept == [f"{synthetic.project_name}_data"]
    assert _volumes(synthetic.project_name) == [f"{synthetic.project_name}_data"]

    assert deploy(synthetic(), _opts()).ok
    store = _container(synthetic.project_name, "store")
    assert _docker("exec", store, "cat", "/data/marker.txt") == "kept-across-teardown"


def test_remove_volumes_with_yes_removes_them(synthetic: Any) -> None:
    project = synthetic()
    assert deploy(project, _opts()).ok
    result = teardown(project, remove_volumes=True, yes=True, is_tty=False)
    assert result.ok
    assert result.volumes_removed == [f"{synthetic.project_name}_data"]
    assert _volumes(synthetic.project_name) == []
    assert _states(synthetic.project_name) == {}


def test_remove_volumes_without_tty_or_yes_is_refused_with_exit_7(
    synthetic: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = synthetic()
    assert deploy(project, _opts()).ok
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # noqa: SIM115 (no terminal)
    with pytest.raises(Exit) as raised:
        teardown_task(Context(), env="dev", remove_volumes=True)
    assert raised.value.code == 7
    assert "--yes" in capsys.readouterr().err
    # nothing was touched
    assert _volumes(synthetic.project_name) == [f"{synthetic.project_name}_data"]
    assert _states(synthetic.project_name)["store"]["State"]["Status"] == "running"
