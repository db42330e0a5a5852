"""The monitoring stand-ins on the real engine: the plugin's compose file and rehearsal override,
merged onto a tiny synthetic base that only declares the `lakehouse` network, come up healthy."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, remove_project, unique_project_name

pytest.importorskip("lakehouse_monitoring", reason="pip install -e plugins/lakehouse-monitoring")

from lakehouse_monitoring import plugin as monitoring

BASE = """\
name: placeholder
networks:
  lakehouse: {}
"""


@pytest.mark.engine
def test_monitoring_standins_come_up_healthy(
    standin_images: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = unique_project_name("monitoring")
    prometheus_port, grafana_port = free_port(), free_port()
    base = tmp_path / "base.yaml"
    base.write_text(BASE)
    env_file = tmp_path / "monitoring.env"
    env_file.write_text(
        "\n".join(
            [
                "BIND_ADDRESS=127.0.0.1",
                f"PROMETHEUS_PORT={prometheus_port}",
                f"GRAFANA_PORT={grafana_port}",
                "GRAFANA_ADMIN_USER=rehearsal",
                "GRAFANA_ADMIN_PASSWORD=rehearsal-password",
                "HEALTHCHECK_INTERVAL=2s",
                "HEALTHCHECK_TIMEOUT=5s",
                "HEALTHCHECK_RETRIES=10",
                "HEALTHCHECK_START_PERIOD=5s",
                "RESTART_POLICY=no",
                "PROMETHEUS_MEMORY_RESERVATION=16M",
                "GRAFANA_MEMORY_RESERVATION=16M",
                "PROMETHEUS_CPU_RESERVATION=0.05",
                "GRAFANA_CPU_RESERVATION=0.05",
            ]
        )
        + "\n"
    )
    rendered = monitoring.render_compose_file(tmp_path / "rendered")
    compose = [
        "docker", "compose", "-p", project, "--project-directory", str(tmp_path),
        "-f", str(base), "-f", str(rendered), "-f", str(monitoring.REHEARSAL_OVERRIDE),
        "--env-file", str(env_file),
    ]  # fmt: skip
    try:
        up = subprocess.run(
            [*compose, "up", "-d", "--wait", "--wait-timeout", "120"],
            capture_output=True,
            text=True,
        )
        assert up.returncode == 0, up.stderr[-3000:]
        ps = subprocess.run(
            [*compose, "ps", "--format", "json"], capture_output=True, text=True, check=True
        )
        rows = [json.loads(line) for line in ps.stdout.splitlines() if line.strip()]
        assert {r["Service"]: r["Health"] for r in rows} == {
            "prometheus": "healthy",
            "grafana": "healthy",
        }
        for port, path in ((prometheus_port, "/-/healthy"), (grafana_port, "/api/health")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                assert resp.status == 200
        volumes = subprocess.run(
            ["docker", "volume", "ls", "--filter", f"label=com.docker.compose.project={project}",
             "--format", "{{.Name}}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert sorted(volumes) == [f"{project}_grafana-data", f"{project}_prometheus-data"]
    finally:
        subprocess.run([*compose, "down", "-v", "--timeout", "5"], capture_output=True)
        remove_project(project)
