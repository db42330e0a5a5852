"""``preflight`` against the real engine, on small synthetic projects (nothing is started)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from invoke import Context, Exit

from lakehouse_tasks.checks import Status
from lakehouse_tasks.preflight import run_preflight
from lakehouse_tasks.project import open_project
from lakehouse_tasks.tasks import preflight as preflight_task
from tests.conftest import unique_project_name

pytestmark = pytest.mark.engine

STANDIN = "lakehouse-rehearsal/busybox:rehearsal"


@pytest.fixture
def standin_image(request: pytest.FixtureRequest) -> str:
    try:
        request.getfixturevalue("standin_images")
    except pytest.FixtureLookupError:
        found = subprocess.run(["docker", "image", "inspect", STANDIN], capture_output=True)
        if found.returncode != 0:
            pytest.skip(f"{STANDIN} is not built (lakehouse rehearsal builds it)")
    return STANDIN


def write_project(root: Path, services: dict[str, Any]) -> str:
    name = unique_project_name("preflight")
    (root / "compose" / "docker-compose.yaml").write_text(
        yaml.safe_dump({"services": services}, sort_keys=False)
    )
    (root / "env" / "dev.env").write_text(
        f"COMPOSE_PROJECT_NAME={name}\nMIN_FREE_DISK_GB=0.001\nBACKUP_DIR={root / 'backups'}\n"
    )
    return name


def web(port: int | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"image": STANDIN, "environment": {"STANDIN_HTTP_PORTS": "8080"}}
    if port:
        spec["ports"] = [f"127.0.0.1:{port}:8080"]
    spec.update(extra)
    return spec


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failures(checks: list[Any]) -> dict[str, str]:
    return {c.name: c.detail for c in checks if c.status == Status.FAIL}


def test_valid_small_project_passes(lakehouse_project: Path, standin_image: str) -> None:
    write_project(
        lakehouse_project,
        {
            "api": web(
                free_port(), deploy={"resources": {"limits": {"cpus": "0.5", "memory": "64M"}}}
            )
        },
    )
    checks = run_preflight(open_project("dev"))
    assert failures(checks) == {}
    names = {c.name for c in checks}
    assert {"engine reachable", "engine version", "compose version", "environment"} <= names
    assert {"compose config", "published ports", "images"} <= names
    preflight_task.preflight(Context(), env="dev")  # exit 0: no Exit raised


def test_port_already_taken_fails_naming_port_and_service(
    lakehouse_project: Path, standin_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        write_project(lakehouse_project, {"api": web(port)})
        failed = failures(run_preflight(open_project("dev")))
        assert list(failed) == [f"port {port} (api)"]
        assert f"port {port}/tcp of api is in use" in failed[f"port {port} (api)"]
        with pytest.raises(Exit) as raised:
            preflight_task.preflight(Context(), env="dev", json_=True)
    assert raised.value.code == 3
    assert f'"port {port} (api)"' in capsys.readouterr().out


def test_cpu_limit_above_host_fails_naming_the_service(
    lakehouse_project: Path, standin_image: str
) -> None:
    write_project(
        lakehouse_project,
        {"api": web(), "big": web(deploy={"resources": {"limits": {"cpus": "64"}}})},
    )
    failed = failures(run_preflight(open_project("dev")))
    assert list(failed) == ["cpu limit (big)"]
    assert "big asks for a limit of 64 CPUs" in failed["cpu limit (big)"]
