"""After a restore, a service still ``starting`` is probed at once with its own healthcheck.

The engine runs the first probe one healthcheck interval after the start (15 s in dev), so
waiting for its verdict left the restore idle; the wait runs the same configured test with
``docker exec`` instead, and still waits for a service whose test fails.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from lakehouse_tasks.backends.compose import services as compose
from lakehouse_tasks.health import HealthSnapshot, ServiceHealth
from lakehouse_tasks.stack import Healthcheck


def _project(test: tuple[str, ...]) -> Any:
    check = Healthcheck(test=test, interval="15s", timeout="5s", retries=3, start_period="")
    services = {"minio": SimpleNamespace(healthcheck=check)}
    compose = SimpleNamespace(docker_cmd=["docker"], project_name="lh-wait")
    return SimpleNamespace(stack=SimpleNamespace(services=services), compose=compose)


def _starting() -> HealthSnapshot:
    row = ServiceHealth(service="minio", container_id="c1", state="running", health="starting")
    return HealthSnapshot(environment="dev", project="lh-wait", rows=(row,))


class _NoEvents:
    def __init__(self, *_: Any) -> None:
        pass

    def wait(self, timeout: float) -> None:
        raise AssertionError("the wait should not sleep")

    def close(self) -> None:
        pass


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    seen: list[list[str]] = []
    monkeypatch.setattr("lakehouse_tasks.health.take_snapshot", lambda *a, **k: _starting())
    monkeypatch.setattr(compose, "ContainerEvents", _NoEvents)
    return seen


def test_a_starting_service_whose_healthcheck_passes_ends_the_wait_at_once(
    probes: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def passes(cmd: Any, container: str, argv: Any, *, timeout: float) -> bool:
        probes.append([container, *argv, f"timeout={timeout:g}"])
        return True

    monkeypatch.setattr(compose, "probe_passes", passes)
    compose.wait_healthy(_project(("CMD-SHELL", "mc ready local")), ["minio"])
    assert probes == [["c1", "/bin/sh", "-c", "mc ready local", "timeout=5"]]


def test_a_failing_healthcheck_keeps_the_wait_going(
    probes: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compose, "probe_passes", lambda *a, **k: False)
    with pytest.raises(AssertionError, match="should not sleep"):
        compose.wait_healthy(_project(("CMD", "curl", "-f", "http://x/")), ["minio"])


def test_a_service_confirmed_by_an_earlier_probe_is_not_probed_again(
    probes: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compose, "probe_passes", lambda *a, **k: probes.append(a) or False)
    project = _project(("CMD", "curl", "-f", "http://x/"))
    assert compose.wait_healthy(project, ["minio"], confirmed={"minio"}) == {"minio"}
    assert probes == []


def test_probes_of_several_services_run_and_only_the_passing_ones_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = Healthcheck(
        test=("CMD", "ready"), interval="15s", timeout="5s", retries=3, start_period=""
    )
    project = SimpleNamespace(
        stack=SimpleNamespace(services={s: SimpleNamespace(healthcheck=check) for s in "abc"}),
        compose=SimpleNamespace(docker_cmd=["docker"], project_name="lh-wait"),
    )
    rows = [
        ServiceHealth(service=s, container_id=f"c-{s}", state="running", health="starting")
        for s in "abc"
    ]
    monkeypatch.setattr(compose, "probe_passes", lambda _cmd, cid, _argv, **_k: cid != "c-b")
    assert compose.probe_starting(project, rows, done=set()) == {"a", "c"}
    assert compose.probe_starting(project, rows, done={"a"}) == {"c"}


def test_a_confirmed_service_that_died_since_is_still_waited_for(
    probes: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    died = ServiceHealth(service="minio", container_id="c1", state="exited", exit_code=1)
    monkeypatch.setattr(
        "lakehouse_tasks.health.take_snapshot",
        lambda *a, **k: HealthSnapshot(environment="dev", project="lh-wait", rows=(died,)),
    )
    monkeypatch.setattr(compose, "probe_passes", lambda *a, **k: True)
    with pytest.raises(AssertionError, match="should not sleep"):
        compose.wait_healthy(_project(("CMD", "ready")), ["minio"], confirmed={"minio"})
