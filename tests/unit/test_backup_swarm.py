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
from lakehouse_tasks.errors import LakehouseError
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
    # a service in `failing` never gets a running task (its new tasks fail again)
    world = SimpleNamespace(
        scales=[], views={"web": _view(2, ["running", "running"])}, failing=set()
    )
    project = SimpleNamespace(
        compose=SimpleNamespace(project_name="stk", docker_cmd=["docker"]),
        env=SimpleNamespace(root=tmp_path, name="dev"),
    )
    world.project = project

    def scale(_cmd: Any, replicas: dict[str, int]) -> None:
        world.scales.append(dict(replicas))
        for full, n in replicas.items():
            name = full.removeprefix("stk_")
            up = ["failed"] if name in world.failing else ["running"] * n
            world.views[name] = _view(world.views[name].replicas if n == 0 else n,
                                      up if n else ["shutdown"])  # fmt: skip

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


def test_a_crash_looping_service_is_stopped_with_the_others_and_left_looping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its volume is quiet only once it is stopped; afterwards it goes back to its loop, and
    the start does not wait for a health it did not have before."""
    from lakehouse_tasks.notices import RecordedNotices

    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    project = SimpleNamespace(
        compose=SimpleNamespace(project_name="stk", docker_cmd=["docker"]),
        env=SimpleNamespace(root=tmp_path, name="dev"),
    )
    backend = FakeBackend(running=["minio"], restarting=["metastore-db"])
    notices = RecordedNotices()
    with maintenance.services_stopped(
        project, ["metastore-db", "minio", "trino"], backend=backend, out=notices
    ) as stopped:
        assert stopped == ["metastore-db", "minio"] and stopped.unsettled == {"metastore-db"}
        assert backend.running == [] and backend.restarting == []
        (state,) = (tmp_path / "state").glob("stopped-stk-*.json")
        assert json.loads(state.read_text())["unsettled"] == ["metastore-db"]
    assert ("start unsettled", ["metastore-db"]) in backend.calls
    assert backend.running == ["minio"] and backend.restarting == ["metastore-db"]
    assert notices.lines == [
        (
            "warn",
            "metastore-db is restarting (a crash loop): stopped for the backup with the "
            "others, started again after it, not waited for",
        )
    ]


def test_swarm_names_a_service_on_its_way_back_after_failed_tasks(fake: Any) -> None:
    looping = SimpleNamespace(
        replicas=1,
        tasks=(
            _Task(state="failed", desired="shutdown"),
            _Task(state="starting", desired="running"),
        ),
    )
    first = SimpleNamespace(replicas=1, tasks=(_Task(state="preparing", desired="running"),))
    # the replacement of a failed task, waiting out the restart delay
    delayed = SimpleNamespace(
        replicas=1,
        tasks=(_Task(state="failed", desired="shutdown"), _Task(state="ready", desired="ready")),
    )
    gone = SimpleNamespace(replicas=0, tasks=(_Task(state="shutdown", desired="shutdown"),))
    fake.views.update({"db": looping, "new": first, "off": gone, "later": delayed})
    assert SwarmBackend().restarting_services(fake.project) == {
        "db": "restarting",
        "later": "restarting",
        "new": "starting",
    }


def test_swarm_start_does_not_wait_for_a_service_that_was_looping(
    fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """db's new task fails again and never runs: the start returns at once for it, while a
    service in the same state that was healthy before is waited for (exit 4 here: no time
    to wait)."""
    fake.views["db"] = _view(1, ["failed"])
    fake.failing.add("db")
    monkeypatch.setattr(swarm, "START_TIMEOUT_S", 0.0)
    assert SwarmBackend().start(fake.project, ["db"], {"db": 1}, unsettled={"db"}) == set()
    assert fake.scales == [{"stk_db": 1}]
    with pytest.raises(LakehouseError, match="db"):
        SwarmBackend().start(fake.project, ["db"], {"db": 1})
