"""The monitoring plugin without an engine: which compose files it adds and when, the merged
configuration compose accepts, the Prometheus targets and the Grafana provisioning."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("lakehouse_monitoring", reason="pip install -e plugins/lakehouse-monitoring")

from lakehouse_monitoring import PACKAGE_DIR
from lakehouse_monitoring import plugin as monitoring

from lakehouse_tasks.checks import Status
from lakehouse_tasks.environment import Environment, load_environment
from lakehouse_tasks.hooks.manager import LakehousePlugins
from lakehouse_tasks.rehearsal import SERVICE_STANDINS

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "plugins" / "lakehouse-monitoring"
needs_docker_cli = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")


def environment(name: str = "staging", **overrides: str) -> Environment:
    return load_environment(name, root=REPO, strict=False, process_env=overrides)


def manager() -> LakehousePlugins:
    plugins = LakehousePlugins(builtins=False, entry_points=False)
    plugins.register(monitoring, "monitoring")
    return plugins


@pytest.fixture(autouse=True)
def _no_rehearsal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAKEHOUSE_REHEARSAL", raising=False)
    monkeypatch.delenv("LAKEHOUSE_REHEARSAL_TIER", raising=False)


def compose_config(*files: Path, env_file: Path) -> dict[str, Any]:
    argv = ["docker", "compose", "--project-directory", str(REPO)]
    for f in files:
        argv += ["-f", str(f)]
    argv += ["--env-file", str(env_file), "config", "--format", "json"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ---- which files, when --------------------------------------------------------------------
def test_no_compose_file_when_monitoring_is_off() -> None:
    env = environment("dev", ENABLE_MONITORING="false")
    assert manager().compose_files(env=env) == []
    assert manager().access_urls(env=env) == []


def test_rendered_compose_file_when_monitoring_is_on() -> None:
    files = manager().compose_files(env=environment("staging", ENABLE_MONITORING="true"))
    assert len(files) == 2
    rendered, credentials = files
    # Staging gives secrets as files: Grafana's credentials come from its secrets-files layer.
    assert credentials.name == "monitoring.secrets-files.yaml"
    assert rendered.name == "monitoring.yaml" and rendered.is_absolute()
    assert rendered.is_relative_to(Path(os.environ["LAKEHOUSE_STATE_DIR"]))
    text = rendered.read_text()
    assert "LAKEHOUSE_MONITORING_DIR" not in text.split("services:", 1)[1]
    assert f"{PACKAGE_DIR}/config/prometheus/prometheus.yml:" in text


def test_rehearsal_override_follows_lakehouse_rehearsal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_REHEARSAL", "1")
    files = manager().compose_files(env=environment("staging"))
    assert [f.name for f in files] == [
        "monitoring.yaml",
        "monitoring.secrets-files.yaml",
        "monitoring.rehearsal.yaml",
    ]


def test_the_real_tier_gets_the_real_prometheus_override(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAKEHOUSE_REHEARSAL_TIER", "real")
    files = manager().compose_files(env=environment("staging"), rehearsal=True)
    assert [f.name for f in files] == [
        "monitoring.yaml",
        "monitoring.secrets-files.yaml",
        "monitoring.rehearsal.real.yaml",
    ]
    # An env-file value counts too, as for the core's own rehearsal layer.
    monkeypatch.delenv("LAKEHOUSE_REHEARSAL_TIER")
    tier = tmp_path / "tier.env"
    tier.write_text("ENABLE_MONITORING=true\nLAKEHOUSE_REHEARSAL_TIER=real\n")
    env = load_environment("dev", root=REPO, strict=False, env_files=[str(tier)])
    assert manager().compose_files(env=env, rehearsal=True)[-1].name == (
        "monitoring.rehearsal.real.yaml"
    )


def test_dev_gives_grafana_its_credentials_in_the_environment() -> None:
    files = manager().compose_files(env=environment("dev", ENABLE_MONITORING="true"))
    assert [f.name for f in files] == ["monitoring.yaml", "monitoring.secrets-env.yaml"]


def test_render_escapes_dollar_and_is_idempotent(tmp_path: Path) -> None:
    weird = tmp_path / "pkg$dir"
    text = monitoring.render_compose_text("- ${LAKEHOUSE_MONITORING_DIR:?x}/a:/a", weird)
    assert text == f"- {str(weird.resolve()).replace('$', '$$')}/a:/a"
    first = monitoring.render_compose_file(tmp_path / "out")
    mtime = first.stat().st_mtime_ns
    assert monitoring.render_compose_file(tmp_path / "out") == first
    assert first.stat().st_mtime_ns == mtime


# ---- the merged configuration -------------------------------------------------------------
@needs_docker_cli
def test_merged_with_the_base_stack(tmp_path: Path) -> None:
    rendered = monitoring.render_compose_file(tmp_path)
    config = compose_config(
        REPO / "compose" / "docker-compose.yaml",
        rendered,
        PACKAGE_DIR / "compose" / "monitoring.secrets-files.yaml",
        env_file=REPO / "env" / "staging.env",
    )
    services = config["services"]
    for name, port, image in (
        ("prometheus", "9090", "prom/prometheus:v3."),
        ("grafana", "3000", "grafana/grafana:12."),
    ):
        svc = services[name]
        assert svc["image"].startswith(image) and svc["image"].count(".") == 2
        limits, reservations = (
            svc["deploy"]["resources"]["limits"],
            svc["deploy"]["resources"]["reservations"],
        )
        assert (
            limits["cpus"] and limits["memory"] and reservations["cpus"] and reservations["memory"]
        )
        assert svc["healthcheck"]["test"] == [
            "CMD",
            "wget",
            "-qO-",
            f"http://localhost:{port}/" + ("-/healthy" if name == "prometheus" else "api/health"),
        ]
        assert svc["healthcheck"]["interval"] == "30s"  # HEALTHCHECK_INTERVAL of staging
        assert svc["labels"]["io.lakehouse.layer"] == "6"
        assert list(svc["networks"]) == ["lakehouse"]
        assert svc["restart"] == "unless-stopped"
        assert svc["logging"]["options"] == {"max-size": "10m", "max-file": "5"}
        assert svc["ports"] == [
            {
                "mode": "ingress",
                "host_ip": "127.0.0.1",
                "target": int(port),
                "published": port,
                "protocol": "tcp",
            }
        ]
        for mount in svc["volumes"]:
            if mount["type"] == "bind":
                assert Path(mount["source"]).is_absolute() and Path(mount["source"]).exists()
    data = {
        m["source"]
        for s in ("prometheus", "grafana")
        for m in services[s]["volumes"]
        if m["type"] == "volume"
    }
    assert data == {"prometheus-data", "grafana-data"}
    for volume in ("prometheus-data", "grafana-data"):
        assert not config["volumes"][volume].get("external")  # the core backup archives them
    grafana = services["grafana"]
    assert "GF_SECURITY_ADMIN_USER" not in grafana["environment"]
    assert (
        grafana["environment"]["GF_SECURITY_ADMIN_USER__FILE"] == "/run/secrets/grafana_admin_user"
    )
    assert {s["source"] for s in grafana["secrets"]} == {
        "grafana_admin_user",
        "grafana_admin_password",
    }
    assert (
        Path(config["secrets"]["grafana_admin_password"]["file"]).name == "GRAFANA_ADMIN_PASSWORD"
    )


@needs_docker_cli
def test_template_works_by_hand_with_lakehouse_monitoring_dir(tmp_path: Path) -> None:
    env_file = tmp_path / "by-hand.env"
    env_file.write_text(
        (REPO / "env" / "dev.env").read_text() + f"\nLAKEHOUSE_MONITORING_DIR={PACKAGE_DIR}\n"
    )
    config = compose_config(
        REPO / "compose" / "docker-compose.yaml", monitoring.COMPOSE_TEMPLATE, env_file=env_file
    )
    sources = [m["source"] for m in config["services"]["prometheus"]["volumes"]]
    assert str(PACKAGE_DIR / "config" / "prometheus" / "prometheus.yml") in sources


def test_rehearsal_override_matches_the_standins() -> None:
    override = yaml.safe_load(monitoring.REHEARSAL_OVERRIDE.read_text())["services"]
    for name in ("prometheus", "grafana"):
        expected = SERVICE_STANDINS[name]
        assert override[name]["image"] == expected["image"]
        assert override[name]["entrypoint"] == expected["entrypoint"]
        assert override[name]["command"] == expected["command"]
        assert override[name]["environment"] == expected["environment"]


def test_real_tier_override_swaps_only_prometheus_image_and_keeps_grafanas_stand_in() -> None:
    from lakehouse_tasks.rehearsal_real import REAL_IMAGES, REAL_SERVICES

    override = yaml.safe_load(monitoring.REAL_REHEARSAL_OVERRIDE.read_text())["services"]
    assert override["prometheus"] == {
        "image": f"{REAL_IMAGES[REAL_SERVICES['prometheus']]}:rehearsal",
        "pull_policy": "never",
    }  # the plugin's own command, healthcheck and hardening run unchanged
    grafana = SERVICE_STANDINS["grafana"]
    for key in ("image", "entrypoint", "command", "environment"):
        assert override["grafana"][key] == grafana[key], key


# ---- configuration files ------------------------------------------------------------------
def test_prometheus_scrapes_only_targets_that_can_be_up() -> None:
    config = yaml.safe_load((PACKAGE_DIR / "config" / "prometheus" / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: (job.get("metrics_path", "/metrics"), job["static_configs"][0]["targets"])
        for job in config["scrape_configs"]
    }
    assert jobs == {
        "prometheus": ("/metrics", ["localhost:9090"]),
        "minio": ("/minio/v2/metrics/cluster", ["minio:9000"]),
        "spark-master": ("/metrics/master/prometheus", ["spark-master:8080"]),
        # `invoke serve` on the Docker host, with its scrape token (docs/STATUS_PAGE.md).
        "lakehouse-ops": ("/metrics", ["host.docker.internal:8790"]),
    }
    serve = next(j for j in config["scrape_configs"] if j["job_name"] == "lakehouse-ops")
    assert serve["authorization"]["credentials_file"] == "/etc/prometheus/lakehouse-serve/token"
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    # The Spark master serves that path only with the PrometheusServlet sink configured.
    spark = (REPO / "compose" / "config" / "spark" / "spark-defaults.conf").read_text().split()
    sink = "spark.metrics.conf.master.sink.prometheusServlet.path"
    assert spark[spark.index(sink) + 1] == "/metrics/master/prometheus"
    assert "org.apache.spark.metrics.sink.PrometheusServlet" in spark


def test_grafana_provisioning_and_dashboard() -> None:
    grafana = PACKAGE_DIR / "config" / "grafana"
    datasource = yaml.safe_load(
        (grafana / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    (ds,) = datasource["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(
        (grafana / "provisioning" / "dashboards" / "lakehouse.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    dashboards = list((grafana / "dashboards").glob("*.json"))
    assert dashboards
    dashboard = json.loads(dashboards[0].read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Services up", "MinIO usage", "JVM heap memory"} <= titles
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == ds["uid"]


def test_every_config_file_ships_as_package_data() -> None:
    """A non-editable install must carry every file the compose file mounts."""
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["lakehouse_monitoring"]
    assert project["project"]["entry-points"]["lakehouse_tasks"] == {
        "monitoring": "lakehouse_monitoring.plugin"
    }
    data = [
        p.relative_to(PACKAGE_DIR).as_posix()
        for p in PACKAGE_DIR.rglob("*")
        if p.is_file() and p.suffix in {".yaml", ".yml", ".json"}
    ]
    assert data
    missing = [f for f in data if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert missing == []


# ---- access URLs and preflight ------------------------------------------------------------
def test_access_urls() -> None:
    urls = manager().access_urls(env=environment("staging", GRAFANA_PORT="3300"))
    assert [(u.name, u.url) for u in urls] == [
        ("Prometheus", "http://127.0.0.1:9090/"),
        ("Grafana", "http://127.0.0.1:3300/"),
    ]


class FakeProject:
    def __init__(self, env: Environment, project_name: str = "lakehouse-staging") -> None:
        self.env = env
        self.rehearsal = False
        self.compose = type(
            "Compose", (), {"project_name": project_name, "docker_cmd": ["docker"]}
        )()


def test_ports_free_pass_and_busy_port_fails_naming_the_variable() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        env = environment("staging", PROMETHEUS_PORT=str(free), GRAFANA_PORT=str(taken))
        checks = monitoring.port_checks_for(FakeProject(env), bindings=[])
    status = {c.name: c.status for c in checks}
    assert status == {
        "monitoring port PROMETHEUS_PORT": Status.PASS,
        "monitoring port GRAFANA_PORT": Status.FAIL,
    }
    assert "GRAFANA_PORT" in checks[1].hint


def test_port_held_by_this_project_passes() -> None:
    env = environment("staging")
    bindings = [
        {
            "container": "lakehouse-staging-grafana-1",
            "project": "lakehouse-staging",
            "port": 3000,
            "host_ip": "127.0.0.1",
            "protocol": "tcp",
        },
        {
            "container": "lakehouse-staging-prometheus-1",
            "project": "lakehouse-staging",
            "port": 9090,
            "host_ip": "127.0.0.1",
            "protocol": "tcp",
        },
    ]
    checks = monitoring.port_checks_for(
        FakeProject(env), bindings=bindings, is_free=lambda _port: (False, "in use")
    )
    assert [c.status for c in checks] == [Status.PASS, Status.PASS]
    other = monitoring.port_checks_for(
        FakeProject(env, "someone-else"), bindings=bindings, is_free=lambda _port: (False, "in use")
    )
    assert [c.status for c in other] == [Status.FAIL, Status.FAIL]
    assert "lakehouse-staging-grafana-1" in other[1].detail


def test_no_checks_when_monitoring_is_off() -> None:
    env = environment("dev", ENABLE_MONITORING="false")
    assert monitoring.port_checks_for(FakeProject(env)) == []
