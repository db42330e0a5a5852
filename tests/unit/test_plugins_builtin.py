"""The built-in plugins: access URLs from the environment, and the JSON-lines event log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.environment import Environment, load_environment
from lakehouse_tasks.events import Event, EventKind, Severity
from lakehouse_tasks.hooks.manager import LakehousePlugins
from lakehouse_tasks.plugin import AccessURL
from lakehouse_tasks.testing import write_env

SCHEMA = """
BIND_ADDRESS: {type: str}
HTTPS_MODE: {type: enum, choices: [disabled, optional, enforced]}
MINIO_CONSOLE_PORT: {type: port}
SPARK_MASTER_UI_PORT: {type: port}
TRINO_PORT: {type: port}
SUPERSET_PORT: {type: port}
AIRFLOW_PORT: {type: port}
PROXY_BIND_ADDRESS: {type: str}
SUPERSET_TLS_PORT: {type: port}
AIRFLOW_TLS_PORT: {type: port}
TLS_CERT_FILE: {type: path}
TLS_KEY_FILE: {type: path}
"""


@pytest.fixture
def make_env(lakehouse_project: Path) -> Any:
    (lakehouse_project / "env" / "variables.yaml").write_text(SCHEMA)

    def make(**values: str) -> Environment:
        write_env(lakehouse_project, "dev", values)
        return load_environment("dev", root=lakehouse_project, process_env={})

    return make


def builtins_only() -> LakehousePlugins:
    return LakehousePlugins(builtins=True, entry_points=False, disabled=(), trace=False)


def test_access_urls_follow_the_port_variables_and_bind_address(make_env: Any) -> None:
    env = make_env(
        BIND_ADDRESS="127.0.0.1",
        HTTPS_MODE="disabled",
        MINIO_CONSOLE_PORT="19001",
        SPARK_MASTER_UI_PORT="18080",
        TRINO_PORT="18086",
        SUPERSET_PORT="18088",
        AIRFLOW_PORT="18089",
    )
    assert builtins_only().access_urls(env=env) == [
        AccessURL("MinIO console", "http://127.0.0.1:19001/", service="minio"),
        AccessURL("Spark UI", "http://127.0.0.1:18080/", service="spark-master"),
        AccessURL("Trino", "http://127.0.0.1:18086/ui/", service="trino"),
        AccessURL("Superset", "http://127.0.0.1:18088/", service="superset"),
        AccessURL("Airflow", "http://127.0.0.1:18089/", service="airflow-webserver"),
    ]


def test_wildcard_bind_shows_localhost_and_defaults_fill_missing_ports(make_env: Any) -> None:
    env = make_env(BIND_ADDRESS="0.0.0.0")
    urls = {u.name: u.url for u in builtins_only().access_urls(env=env)}
    assert urls["MinIO console"] == "http://localhost:9001/"
    assert urls["Trino"] == "http://localhost:8086/ui/"
    assert urls["Airflow"] == "http://localhost:8089/"


def test_https_enforced_goes_through_the_proxy(make_env: Any) -> None:
    env = make_env(
        BIND_ADDRESS="127.0.0.1",
        PROXY_BIND_ADDRESS="0.0.0.0",
        HTTPS_MODE="enforced",
        SUPERSET_PORT="18088",
        SUPERSET_TLS_PORT="8488",
    )
    urls = {u.name: u for u in builtins_only().access_urls(env=env)}
    assert all(u.url.startswith("https://localhost:") for u in urls.values())
    assert all(u.note == "through the TLS proxy" for u in urls.values())
    # The proxy's port, not the UI's own (which prod does not publish).
    assert urls["Superset"].url == "https://localhost:8488/"


def test_https_optional_names_the_proxy_url_when_certificates_are_set(make_env: Any) -> None:
    plain = builtins_only().access_urls(env=make_env(HTTPS_MODE="optional"))
    assert all(u.url.startswith("http://") and u.note == "" for u in plain)
    env = make_env(
        HTTPS_MODE="optional",
        TLS_CERT_FILE="certs/staging/tls.crt",
        TLS_KEY_FILE="certs/staging/tls.key",
        AIRFLOW_TLS_PORT="8489",
    )
    urls = {u.name: u for u in builtins_only().access_urls(env=env)}
    assert urls["Airflow"].url.startswith("http://")
    assert urls["Airflow"].note == "HTTPS: https://localhost:8489/"


def test_access_urls_plugin_can_be_disabled(make_env: Any) -> None:
    plugins = LakehousePlugins(entry_points=False, disabled=["lakehouse.access_urls"])
    assert plugins.access_urls(env=make_env()) == []


def test_event_log_appends_one_json_line_per_event(
    lakehouse_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugins = builtins_only()
    plugins.emit(Event(EventKind.DEPLOY_STARTED, "dev", "deploy started"))
    plugins.emit(Event(EventKind.SERVICE_UNHEALTHY, "dev", "trino unhealthy", service="trino"))
    log = lakehouse_project / ".lakehouse" / "events.jsonl"  # LAKEHOUSE_STATE_DIR of the fixture
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["kind"], e["service"], e["severity"]) for e in lines] == [
        ("deploy.started", None, "info"),
        ("service.unhealthy", "trino", Severity.ERROR.name.lower()),
    ]
    assert capsys.readouterr().out == ""  # data pipes stay clean
