"""Lifecycle behaviour end to end on the rehearsal stack (real engine, stand-in images).

Read-only checks use the shared dev stack; tests that break a stack deploy their own.
Faults are injected with the stand-ins' switches: ``STANDIN_FAULT_<SERVICE>`` at start, or
``/tmp/standin-fault`` in a running container.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from invoke import Context, Exit

from tests.conftest import deploy_and_wait

pytestmark = pytest.mark.engine


def container(project: Any, service: str) -> str:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-aq",
            "--filter",
            f"label=com.docker.compose.project={project.compose.project_name}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(out) == 1, f"{service}: {out}"
    return out[0]


def health_status(cid: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Health.Status}}", cid],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def set_fault(cid: str, mode: str) -> None:
    subprocess.run(
        ["docker", "exec", cid, "sh", "-c", f"echo {mode} > /tmp/standin-fault"], check=True
    )


def wait_for(cid: str, status: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health_status(cid) == status:
            return time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"{cid} not {status} after {timeout}s")


def run_task(task: Any, **kwargs: Any) -> int:
    try:
        task(Context(), **kwargs)
    except Exit as exc:
        return int(exc.code)
    return 0


class Receiver:
    """A real HTTP endpoint on loopback that records every JSON alert and when it came."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.received.append((time.monotonic(), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def matching(self, *words: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, body) for t, body in self.received if all(w in json.dumps(body) for w in words)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def shared_args(project: Any) -> dict[str, Any]:
    return {"env": "dev", "rehearsal": True, "env_file": [project.env_file]}


# ---- health on the shared stack ---------------------------------------------------------------


def test_health_of_the_deployed_stack_is_all_healthy(
    shared_dev_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.health import health

    code = run_task(health, json_=True, **shared_args(shared_dev_stack))
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    statuses = {row["service"]: row["status"] for row in data["services"]}
    assert statuses["minio-init"] == statuses["airflow-init"] == "exited (0)"
    assert {s for n, s in statuses.items() if not n.endswith("-init")} == {"healthy"}
    assert len(statuses) == 15


def test_unhealthy_stand_in_exits_1_and_watch_reports_the_transition_once(
    shared_dev_stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.health import health

    cid = container(shared_dev_stack, "ingestor")
    try:
        set_fault(cid, "unhealthy-after:3")
        code = run_task(
            health,
            json_=True,
            watch="1",
            count=14,
            no_resources=True,
            **shared_args(shared_dev_stack),
        )
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
        events = [e for line in lines for e in line.get("events", [])]
        unhealthy = [e for e in events if e["kind"] == "service.unhealthy"]
        assert [e["service"] for e in unhealthy] == ["ingestor"], events
        assert code == 1  # the last refresh is degraded
        assert lines[0]["ok"] is True
        assert lines[-1]["ok"] is False
    finally:
        set_fault(cid, "none")
        wait_for(cid, "healthy")


# ---- preflight on a rehearsal project ---------------------------------------------------------


def test_preflight_fails_on_a_taken_port_and_on_a_limit_larger_than_the_host(
    rehearsal_project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.preflight import preflight

    project = rehearsal_project(env="dev", hint="preflight", TRINO_CPU_LIMIT="64")
    port = int(project.env.values["SUPERSET_PORT"])
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", port))
        holder.listen()
        code = run_task(preflight, json_=True, **shared_args(project))
    assert code == 3
    checks = json.loads(capsys.readouterr().out)["checks"]
    failed = {c["name"]: c for c in checks if c["status"] == "fail"}
    port_failures = [c for c in failed.values() if str(port) in c["detail"]]
    assert port_failures and "superset" in port_failures[0]["detail"]
    assert "cpu limit (trino)" in failed
    assert "TRINO_CPU_LIMIT" in failed["cpu limit (trino)"]["hint"]


# ---- a deploy that fails, and its alert --------------------------------------------------------


def test_deploy_fails_naming_the_never_healthy_service_and_alerts(
    rehearsal_project: Any, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.deploy import deploy

    project = rehearsal_project(
        env="dev",
        hint="deployfail",
        STANDIN_FAULT_TRINO="never-healthy",
        # Trino must be judged unhealthy well inside the deploy timeout.
        HEALTHCHECK_START_PERIOD="20s",
        ALERT_URLS=receiver.url,
        ALERT_THROTTLE_SECONDS="300",
    )
    started = time.monotonic()
    code = run_task(
        deploy, skip_backup=True, skip_preflight=True, timeout="90", **shared_args(project)
    )
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 4
    assert elapsed < 150
    assert "trino" in err
    assert "standin" in err.lower()  # its last log lines are shown
    # Healthy services were left running.
    assert health_status(container(project, "minio")) == "healthy"
    alerts = receiver.matching("deploy.failed") or receiver.matching("failed", "dev")
    assert len(alerts) == 1, receiver.received


# ---- monitoring and alerts during watch --------------------------------------------------------


def test_monitoring_joins_and_watch_alerts_once_within_two_intervals(
    rehearsal_project: Any, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.health import health

    project = rehearsal_project(
        env="dev",
        hint="monitoring",
        ENABLE_MONITORING="true",
        ALERT_URLS=receiver.url,
        ALERT_THROTTLE_SECONDS="300",
    )
    assert {"prometheus", "grafana"} <= set(project.stack.services)
    deploy_and_wait(project)
    for service in ("prometheus", "grafana"):
        assert health_status(container(project, service)) == "healthy"

    interval = 5.0
    cid = container(project, "superset")
    result: dict[str, int] = {}

    def watch() -> None:
        result["code"] = run_task(
            health, json_=True, watch=str(int(interval)), count=6, **shared_args(project)
        )

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(interval)
    set_fault(cid, "unhealthy")
    became_unhealthy = wait_for(cid, "unhealthy")
    thread.join(timeout=120)
    assert not thread.is_alive()
    capsys.readouterr()

    alerts = receiver.matching("superset", "unhealthy")
    assert len(alerts) == 1, receiver.received  # once, while it stays unhealthy
    delay = alerts[0][0] - became_unhealthy
    assert delay <= 2 * interval, f"alert {delay:.1f}s after the container turned unhealthy"
    assert result["code"] == 1
