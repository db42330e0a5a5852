"""Preflight checks as data: resources, ports, images, secret files, certificates."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.checks import Check, Status
from lakehouse_tasks.engine.client import EngineInfo
from lakehouse_tasks.engine.containers import _ps_ports
from lakehouse_tasks.environment import Environment
from lakehouse_tasks.preflight import (
    disk_check,
    engine_checks,
    image_checks,
    port_checks,
    port_is_free,
    resource_checks,
    secret_file_checks,
    tls_checks,
)
from lakehouse_tasks.schema import Schema
from lakehouse_tasks.stack import PublishedPort, Stack
from lakehouse_tasks.tasks.preflight import exit_code_for, render_checks_table
from lakehouse_tasks.ui import render_plain
from tests.conftest import self_signed_cert

GIB = 1024**3


def info(cpus: int = 4, memory: int = 8 * GIB, **kw: Any) -> EngineInfo:
    base: dict[str, Any] = {
        "server_version": "20.10.24",
        "compose_version": "2.26.1",
        "cpus": cpus,
        "memory_bytes": memory,
        "docker_root_dir": "/var/lib/docker",
        "cgroup_version": "2",
        "swarm_state": "inactive",
    }
    base.update(kw)
    return EngineInfo(**base)


def stack(**services: dict[str, Any]) -> Stack:
    return Stack.from_config({"name": "t", "services": services})


def svc(
    cpus: float = 0,
    memory: str = "",
    res_cpus: float = 0,
    res_memory: str = "",
    **extra: Any,
) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    reservations: dict[str, Any] = {}
    if cpus:
        limits["cpus"] = cpus
    if memory:
        limits["memory"] = memory
    if res_cpus:
        reservations["cpus"] = res_cpus
    if res_memory:
        reservations["memory"] = res_memory
    return {
        "image": "busybox",
        "deploy": {"resources": {"limits": limits, "reservations": reservations}},
        **extra,
    }


def statuses(checks: list[Check]) -> dict[str, Status]:
    return {c.name: c.status for c in checks}


# ---- engine ---------------------------------------------------------------------------------
def test_engine_versions() -> None:
    assert all(c.status == Status.PASS for c in engine_checks(info()))
    old = statuses(engine_checks(info(server_version="19.03.1", compose_version="2.3.0")))
    assert old == {
        "engine reachable": Status.PASS,
        "engine version": Status.FAIL,
        "compose version": Status.FAIL,
    }
    down = engine_checks(None, "The Docker engine is not reachable")
    assert [c.status for c in down] == [Status.FAIL] and down[0].hint


# ---- resources ------------------------------------------------------------------------------
def test_cpu_limit_above_host_fails_naming_the_service() -> None:
    checks = resource_checks(stack(trino=svc(cpus=64), minio=svc(cpus=1)), info(cpus=4))
    failing = [c for c in checks if c.status == Status.FAIL]
    assert [c.name for c in failing] == ["cpu limit (trino)"]
    assert "trino" in failing[0].detail and "64" in failing[0].detail
    assert "trino" in failing[0].hint


@pytest.mark.parametrize(("hard", "expected"), [(False, Status.WARN), (True, Status.FAIL)])
def test_memory_oversubscription_warns_on_compose_fails_on_swarm(
    hard: bool, expected: Status
) -> None:
    s = stack(a=svc(memory="6G"), b=svc(memory="6G"))
    assert statuses(resource_checks(s, info(memory=8 * GIB), hard_reservations=hard)) == {
        "memory limits total": expected
    }


@pytest.mark.parametrize(("hard", "expected"), [(False, Status.WARN), (True, Status.FAIL)])
def test_reservations_that_do_not_fit(hard: bool, expected: Status) -> None:
    s = stack(a=svc(res_cpus=3, res_memory="5G"), b=svc(res_cpus=3, res_memory="5G"))
    got = statuses(resource_checks(s, info(cpus=4, memory=8 * GIB), hard_reservations=hard))
    assert got == {"memory reservations": expected, "cpu reservations": expected}


@pytest.mark.parametrize(("hard", "expected"), [(False, Status.WARN), (True, Status.FAIL)])
def test_single_memory_limit_above_host(hard: bool, expected: Status) -> None:
    got = statuses(
        resource_checks(stack(big=svc(memory="16G")), info(memory=8 * GIB), hard_reservations=hard)
    )
    assert got["memory limit (big)"] == expected


def test_resources_that_fit_pass() -> None:
    checks = resource_checks(stack(a=svc(cpus=1, memory="1G", res_memory="512M")), info())
    assert [(c.name, c.status) for c in checks] == [("host resources", Status.PASS)]


# ---- ports ----------------------------------------------------------------------------------
def ported(port: int, host_ip: str = "127.0.0.1") -> Stack:
    return stack(
        web={
            "image": "busybox",
            "ports": [{"target": 80, "published": str(port), "host_ip": host_ip}],
        }
    )


def test_port_held_by_another_container_fails_naming_it() -> None:
    bindings = [
        {
            "container": "other-web-1",
            "project": "other",
            "host_ip": "0.0.0.0",
            "port": 8080,
            "protocol": "tcp",
        }
    ]
    checks = port_checks(ported(8080), "mine", bindings, is_free=lambda p: (False, "in use"))
    assert [c.status for c in checks] == [Status.FAIL]
    assert checks[0].name == "port 8080 (web)"
    assert "held by container other-web-1 (project other)" in checks[0].detail


def test_port_held_by_this_project_is_fine() -> None:
    bindings = [
        {
            "container": "mine-web-1",
            "project": "mine",
            "host_ip": "0.0.0.0",
            "port": 8080,
            "protocol": "tcp",
        }
    ]
    checks = port_checks(ported(8080), "mine", bindings, is_free=lambda p: (False, "in use"))
    assert statuses(checks) == {"published ports": Status.PASS}


def test_port_bind_probe_on_a_real_socket() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert port_is_free(PublishedPort("127.0.0.1", port, 80)) == (False, "in use")
    assert port_is_free(PublishedPort("127.0.0.1", port, 80))[0]


def test_ps_port_parsing() -> None:
    assert _ps_ports("0.0.0.0:8080->80/tcp, :::8080->80/tcp, 9000/tcp") == [
        ("0.0.0.0", 8080, "tcp"),
        ("::", 8080, "tcp"),
    ]
    assert _ps_ports("127.0.0.1:7000-7001->7000-7001/udp") == [
        ("127.0.0.1", 7000, "udp"),
        ("127.0.0.1", 7001, "udp"),
    ]


# ---- images ---------------------------------------------------------------------------------
def test_images() -> None:
    s = stack(
        a={"image": "here:1"},
        b={"image": "gone:1"},
        c={"image": "gone:1"},
        d={"image": "mine:1", "build": {"context": "."}},
    )
    checks = image_checks(s, {"here:1": "sha256:1", "gone:1": None, "mine:1": None})
    got = {c.name: (c.status, c.detail) for c in checks}
    assert got["image gone:1"][0] == Status.FAIL and "b, c" in got["image gone:1"][1]
    assert got["image mine:1"] == (Status.WARN, "not built yet (for d): will be built")
    assert "image here:1" not in got
    offline = image_checks(s, {"here:1": "sha256:1"}, pullable=lambda ref: (False, "no network"))
    got = statuses(offline)
    assert got == {
        "image gone:1": Status.FAIL,
        "image here:1": Status.WARN,
        "image mine:1": Status.WARN,
    }


# ---- disk -----------------------------------------------------------------------------------
def test_disk(tmp_path: Path) -> None:
    class Usage:
        free = 5 * GIB

    ok = disk_check("disk", tmp_path, 1, usage=lambda _p: Usage())
    low = disk_check("disk", tmp_path, 10, usage=lambda _p: Usage())
    hidden = disk_check("disk", tmp_path / "nope" / "docker", 1, missing_hint="check the VM")
    assert (ok.status, low.status, hidden.status) == (Status.PASS, Status.FAIL, Status.WARN)
    assert "not visible from this host" in hidden.detail


# ---- files ----------------------------------------------------------------------------------
def env_of(
    tmp_path: Path, name: str, values: dict[str, str] | None = None, files: tuple[Path, ...] = ()
) -> Environment:
    (tmp_path / "env").mkdir(exist_ok=True)
    tracked = tmp_path / "env" / f"{name}.env"
    tracked.write_text("")
    return Environment(
        name=name,
        root=tmp_path,
        values=values or {},
        sources={},
        schema=Schema(),
        files=(tracked, *files),
    )


def test_prod_secret_files_must_be_private(tmp_path: Path) -> None:
    local = tmp_path / "env" / "prod.local.env"
    (tmp_path / "env").mkdir()
    local.write_text("X_PASSWORD=y\n")
    os.chmod(local, 0o644)
    env = env_of(tmp_path, "prod", files=(local,))
    checks = secret_file_checks(env)
    assert [c.status for c in checks] == [Status.FAIL]
    assert checks[0].hint == f"chmod 600 {local}"
    os.chmod(local, 0o600)
    assert [c.status for c in secret_file_checks(env)] == [Status.PASS]
    assert secret_file_checks(env_of(tmp_path, "dev", files=(local,))) == []


needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def make_cert(tmp_path: Path, days: int) -> tuple[Path, Path]:
    cert, key = tmp_path / f"cert{days}.pem", tmp_path / f"key{days}.pem"
    self_signed_cert(cert, key, days=days)
    return cert, key


@needs_openssl
def test_certificate_expiry(tmp_path: Path) -> None:
    good_cert, good_key = make_cert(tmp_path, 365)
    soon_cert, soon_key = make_cert(tmp_path, 5)
    base = {"HTTPS_MODE": "enforced"}
    good = tls_checks(
        env_of(
            tmp_path,
            "prod",
            {**base, "TLS_CERT_FILE": str(good_cert), "TLS_KEY_FILE": str(good_key)},
        )
    )
    assert [c.status for c in good] == [Status.PASS]
    soon = tls_checks(
        env_of(
            tmp_path,
            "prod",
            {**base, "TLS_CERT_FILE": str(soon_cert), "TLS_KEY_FILE": str(soon_key)},
        )
    )
    assert [c.status for c in soon] == [Status.FAIL] and "expires on" in soon[0].detail
    later = _dt.datetime.now(_dt.UTC) + _dt.timedelta(days=400)
    expired = tls_checks(
        env_of(
            tmp_path,
            "prod",
            {**base, "TLS_CERT_FILE": str(good_cert), "TLS_KEY_FILE": str(good_key)},
        ),
        now=later,
    )
    assert "expired on" in expired[0].detail


def test_tls_files_missing_and_mode_disabled(tmp_path: Path) -> None:
    missing = tls_checks(
        env_of(tmp_path, "prod", {"HTTPS_MODE": "enforced", "TLS_CERT_FILE": "certs/x.pem"})
    )
    assert [c.status for c in missing] == [Status.FAIL, Status.FAIL]
    assert tls_checks(env_of(tmp_path, "prod", {"HTTPS_MODE": "disabled"})) == []
    assert tls_checks(env_of(tmp_path, "prod", {"HTTPS_MODE": "optional"})) == []


# ---- exit codes and rendering ---------------------------------------------------------------
def test_exit_codes_and_table() -> None:
    warn_only = [Check("a", Status.PASS), Check("b", Status.WARN, "meh", "fix b")]
    assert exit_code_for(warn_only) == 0
    failing = [*warn_only, Check("c", Status.FAIL, "broken", "fix c")]
    assert exit_code_for(failing) == 3
    text = render_plain(render_checks_table(failing, title="Preflight of dev (compose)"))
    assert "fail    c" in text and "fix c" in text
    assert text.splitlines()[-1] == "1 pass, 1 warn, 1 fail"
