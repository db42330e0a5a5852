"""The swarm backend of backup/restore without an engine: stopping means scaling to 0, the
state file records target and replicas, and recover_interrupted scales back."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse_tasks.backends.swarm import SwarmBackend
from lakehouse_tasks.backends.swarm import backend as swarm
from lakehouse_tasks.data import maintenance
from lakehouse_tasks.engine import swarm as engine_swarm
from lakehouse_tasks.testing import FakeBackend


class _Task(SimpleNamespace):
    pass


def _view(replicas: int, states: list[str]) -> Any:
    tasks = tuple(
        _Task(state=s, desired="running" if s == "running" else "shutdown") for s in states
    )
    return SimpleNamespace(replicas=replicas, tasks=tasks)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    world = SimpleNamespace(scales=[], views={"web": _view(2, ["running", "running"])})
    project = SimpleNamespace(
        compose=SimpleNamespace(project_name="stk", docker_cmd=["docker"]),
        env=SimpleNamespace(root=tmp_path, name="dev"),
    )
    world.project = project

    def scale(_cmd: Any, replicas: dict[str, int]) -> None:
        world.scales.append(dict(replicas))
        for full, n in replicas.items():
            name = full.removeprefix("stk_")
            world.views[name] = _view(world.views[name].replicas if n == 0 else n,
                                      ["running"] * n or ["shutdown"])  # fmt: skip

    monkeypatch.setattr(engine_swarm, "service_scale", scale)
    monkeypatch.setattr(swarm, "stack_views", lambda _p: world.views)
    return world


def test_services_stopped_scales_to_zero_and_back_recording_replicas(fake: Any) -> None:
    with maintenance.services_stopped(fake.project, ["web"], backend=SwarmBackend()) as stopped:
        assert stopped == ["web"]
        states = list((Path(fake.project.env.root) / "state").glob("stopped-stk-*.json"))
        data = json.loads(states[0].read_text())
        assert data["target"] == "swarm" and data["replicas"] == {"web": 2}
    assert fake.scales == [{"stk_web": 0}, {"stk_web": 2}]
    assert not list((Path(fake.project.env.root) / "state").glob("stopped-*.json"))


def test_recover_interrupted_scales_back_to_the_recorded_replicas(fake: Any) -> None:
    fake.views["web"] = _view(0, ["shutdown"])
    state = Path(fake.project.env.root) / "state" / "stopped-stk-1-1.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(
        json.dumps({"services": ["web"], "target": "swarm", "replicas": {"web": 3}, "pid": 0})
    )
    assert maintenance.recover_interrupted(fake.project) == ["web"]
    assert fake.scales == [{"stk_web": 3}]
    assert not state.exists()


def test_an_old_state_file_without_target_means_compose(fake: Any) -> None:
    # the current target is a compose one: a record without a target is started with it,
    # not handed to swarm (which would scale)
    backend = FakeBackend(name="compose")
    state = Path(fake.project.env.root) / "state" / "stopped-stk-1-2.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"services": ["web"], "pid": 0}))
    assert maintenance.recover_interrupted(fake.project, backend=backend) == ["web"]
    assert backend.calls == [("start", ["web"])] and fake.scales == []
    assert not state.exists()
