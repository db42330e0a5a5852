"""Starting stopped compose services again without ``compose start``: ``docker start`` in
dependency waves, a readiness wait (own healthcheck probed at once) between waves only, and
the later waves started even when an earlier one does not become healthy."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse_tasks.backends.compose import ComposeBackend
from lakehouse_tasks.backends.compose import services as compose
from lakehouse_tasks.engine import containers as engine_containers
from lakehouse_tasks.engine import executor
from lakehouse_tasks.errors import LakehouseError

LAYERS = [["db", "minio"], ["metastore"], ["spark", "trino"], ["ui"]]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    calls: list[tuple[str, tuple[str, ...]]] = []
    stack = SimpleNamespace(
        startup_layers=lambda: LAYERS,
        active={s: object() for layer in LAYERS for s in layer},
    )
    project = SimpleNamespace(
        compose=SimpleNamespace(project_name="stk", docker_cmd=["docker"]), stack=stack
    )
    rows = [
        {
            "ID": f"id-{s}",
            "Labels": f"com.docker.compose.project=stk,com.docker.compose.service={s}",
        }
        for layer in LAYERS
        for s in layer
    ]
    monkeypatch.setattr(engine_containers, "project_containers", lambda _cmd, _name: rows)
    monkeypatch.setattr(
        executor, "run", lambda cmd, **_kw: calls.append(("docker", tuple(cmd[1:]))) or ""
    )

    def wait(_project: Any, services: list[str], **_kw: Any) -> set[str]:
        calls.append(("wait", tuple(services)))
        return set(services)

    monkeypatch.setattr(compose, "wait_healthy", wait)
    return SimpleNamespace(project=project, calls=calls)


def test_waves_follow_the_dependency_order_restricted_to_the_stopped(world: Any) -> None:
    assert compose.start_waves(world.project, ["ui", "trino", "metastore", "gone"]) == [
        ["metastore"],
        ["trino"],
        ["ui"],
        ["gone"],
    ]


def test_docker_start_wave_by_wave_waiting_between_waves_only(world: Any) -> None:
    confirmed = ComposeBackend().start(world.project, ["ui", "spark", "trino", "metastore"], {})
    # what the waits between waves found healthy; the last wave was not waited for
    assert confirmed == {"metastore", "spark", "trino"}
    # the containers of one wave start side by side: their order within the wave is free
    world.calls[2:4] = sorted(world.calls[2:4])
    assert world.calls == [
        ("docker", ("start", "id-metastore")),
        ("wait", ("metastore",)),
        ("docker", ("start", "id-spark")),
        ("docker", ("start", "id-trino")),
        ("wait", ("spark", "trino")),
        ("docker", ("start", "id-ui")),
    ]


def test_a_wave_that_stays_unhealthy_still_starts_the_later_waves(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(_project: Any, services: list[str], **_kw: Any) -> None:
        world.calls.append(("wait", tuple(services)))
        raise LakehouseError("metastore did not become healthy")

    monkeypatch.setattr(compose, "wait_healthy", never)
    with pytest.raises(LakehouseError, match="did not become healthy"):
        ComposeBackend().start(world.project, ["ui", "metastore"], {})
    assert world.calls == [
        ("docker", ("start", "id-metastore")),
        ("wait", ("metastore",)),
        ("docker", ("start", "id-ui")),
    ]


def test_stopping_is_one_docker_stop_of_every_running_container_of_the_services(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {
            "ID": f"id-{s}",
            "State": "running",
            "Labels": f"com.docker.compose.project=stk,com.docker.compose.service={s}",
        }
        for s in ("metastore", "spark", "trino", "ui")
    ]
    monkeypatch.setattr(engine_containers, "project_containers", lambda _cmd, _name: rows)
    rows[1]["State"] = "exited"
    ComposeBackend().stop(world.project, ["ui", "spark", "trino", "metastore"])
    assert world.calls == [
        ("docker", ("stop", "id-ui", "id-trino", "id-metastore")),
    ]


def test_running_containers_leave_out_stopped_and_one_off_containers(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def row(cid: str, service: str, state: str = "running", extra: str = "") -> dict[str, str]:
        labels = f"com.docker.compose.project=stk,com.docker.compose.service={service}{extra}"
        return {"ID": cid, "State": state, "Labels": labels}

    rows = [
        row("w2", "worker", extra=",com.docker.compose.container-number=2"),
        row("w1", "worker", extra=",com.docker.compose.container-number=1"),
        row("gone", "db", state="exited"),
        row("run1", "dbt", extra=",com.docker.compose.oneoff=True"),
    ]
    monkeypatch.setattr(engine_containers, "project_containers", lambda _cmd, _name: rows)
    world.project.env = SimpleNamespace(name="dev")
    assert compose.running_containers(world.project) == {"worker": ["w1", "w2"]}
    assert ComposeBackend().running_services(world.project) == ["worker"]
    assert ComposeBackend().exec_target(world.project, "worker") == "w1"
    with pytest.raises(LakehouseError, match="no running container"):
        ComposeBackend().exec_target(world.project, "db")


def test_a_one_off_container_of_a_service_is_not_started_again(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"ID": "id-ui", "Labels": "com.docker.compose.project=stk,com.docker.compose.service=ui"},
        {
            "ID": "run-ui",
            "Labels": "com.docker.compose.project=stk,com.docker.compose.service=ui,"
            "com.docker.compose.oneoff=True",
        },
    ]
    monkeypatch.setattr(engine_containers, "project_containers", lambda _cmd, _name: rows)
    ComposeBackend().start(world.project, ["ui"], {})
    assert world.calls == [("docker", ("start", "id-ui"))]
