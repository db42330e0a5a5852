"""Starting stopped compose services again without ``compose start``: ``docker start`` in
dependency waves, a readiness wait (own healthcheck probed at once) between waves only, and
the later waves started even when an earlier one does not become healthy."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse_tasks import backup, docker, restore
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
    monkeypatch.setattr(docker, "project_containers", lambda _cmd, _name: rows)
    monkeypatch.setattr(
        docker, "run", lambda cmd, **_kw: calls.append(("docker", tuple(cmd[1:]))) or ""
    )

    def wait(_project: Any, services: list[str], **_kw: Any) -> None:
        calls.append(("wait", tuple(services)))

    monkeypatch.setattr(restore, "wait_healthy", wait)
    return SimpleNamespace(project=project, calls=calls)


def test_waves_follow_the_dependency_order_restricted_to_the_stopped(world: Any) -> None:
    assert backup._start_waves(world.project, ["ui", "trino", "metastore", "gone"]) == [
        ["metastore"],
        ["trino"],
        ["ui"],
        ["gone"],
    ]


def test_docker_start_wave_by_wave_waiting_between_waves_only(world: Any) -> None:
    backup._start_services(world.project, ["ui", "spark", "trino", "metastore"], "compose", {})
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

    monkeypatch.setattr(restore, "wait_healthy", never)
    with pytest.raises(LakehouseError, match="did not become healthy"):
        backup._start_services(world.project, ["ui", "metastore"], "compose", {})
    assert world.calls == [
        ("docker", ("start", "id-metastore")),
        ("wait", ("metastore",)),
        ("docker", ("start", "id-ui")),
    ]
