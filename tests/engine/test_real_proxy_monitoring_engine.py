"""The TLS proxy and the monitoring plugin's Prometheus on the real-application tier.

* tls-proxy: Debian's real nginx (lakehouse-rehearsal/nginx) as the merged **prod**
  configuration defines the service on the real tier: prod's capabilities, read-only root,
  tmpfs, no-new-privileges, the repository's nginx.conf, an operator-owned 0600 key, the
  healthcheck. It runs in a project of its own attached to the network of the shared real-tier
  stack (``real_app_stack``), so its upstreams are the real Superset and Airflow (and Trino's
  stand-in) without deploying a second real stack.
* prometheus: the shared stack runs with ENABLE_MONITORING=true, so the tool's deploy started
  the plugin's Prometheus on Debian's real prometheus (lakehouse-rehearsal/prometheus) with the
  plugin's own prometheus.yml and alerts.yml; Grafana is its stand-in.

Each test asserts what a user notices; the ones that stop a service start it again.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.smoke.context import Services
from tests.conftest import REAL_TIER_TIMEOUT_S, RehearsalFactory, self_signed_cert

pytestmark = [pytest.mark.engine, pytest.mark.timeout(REAL_TIER_TIMEOUT_S)]

OPERATOR_UID = 1000  # owns the TLS key, as the tool's security check wants (not root)
CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "NET_BIND_SERVICE": 10, "SETGID": 6, "SETUID": 7}
SUPERSET_LOGIN_MARK = "<title>Superset</title>"
AIRFLOW_LOGIN_MARK = "<title>Sign In - Airflow"
ALERTS = {"LakehouseBackupStale", "LakehouseBackupOverdue", "LakehouseBackupFailed",
          "LakehouseSmokeHopFailed", "LakehouseStatusUnavailable"}  # fmt: skip


def container(project_name: str, service: str) -> str:
    info = Services.of_project(project_name).get(service)
    assert info is not None, f"{service} is not in {project_name}"
    return info.container_id


def inspect(cid: str) -> dict[str, Any]:
    out = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def docker_exec(cid: str, *argv: str) -> str:
    done = subprocess.run(["docker", "exec", cid, *argv], capture_output=True, text=True)
    return done.stdout + done.stderr


def wait_for(what: str, probe: Any, timeout: float = 240, every: float = 3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not seen within {timeout:.0f} s")
        time.sleep(every)


def health(cid: str) -> str:
    state = inspect(cid)["State"]
    return str(state.get("Health", {}).get("Status") or state["Status"])


# ---- the TLS proxy --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_proxy(real_app_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if os.geteuid() != 0:
        pytest.skip("needs root: the TLS key must belong to another user (the operator)")
    tls = tmp_path_factory.mktemp("tls")
    cert, key = tls / "tls.crt", tls / "tls.key"
    self_signed_cert(cert, key)
    os.chown(key, OPERATOR_UID, OPERATOR_UID)
    os.chmod(key, 0o600)
    factory = RehearsalFactory(tmp_path_factory)
    project = factory(
        env="prod",
        hint="realproxy",
        LAKEHOUSE_REHEARSAL_TIER="real",
        ENABLE_MONITORING="false",
        TLS_CERT_FILE=str(cert),
        TLS_KEY_FILE=str(key),
        PROXY_BIND_ADDRESS="127.0.0.1",
    )
    # The one change to the real files: the `lakehouse` network is the shared stack's.
    attach = tls / "attach.yaml"
    network = f"{real_app_stack.compose.project_name}_lakehouse"
    attach.write_text(f"networks:\n  lakehouse:\n    name: {network}\n    external: true\n")
    project.cert = cert
    project.compose_cmd = [*project.compose.compose_cmd, "--file", str(attach)]
    try:
        up = subprocess.run(
            [*project.compose_cmd, "up", "-d", "--no-deps", "--wait", "--wait-timeout", "240",
             "tls-proxy"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr[-3000:]
        yield project
    finally:
        factory.cleanup()


def https(project: Any, port_variable: str, path: str) -> tuple[int, dict[str, str], str]:
    context = ssl.create_default_context(cafile=str(project.cert))
    context.check_hostname = False  # the certificate says CN=localhost; we dial 127.0.0.1
    conn = http.client.HTTPSConnection(
        "127.0.0.1", int(project.env.get(port_variable)), context=context, timeout=60
    )
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read().decode("utf-8", "replace")
    finally:
        conn.close()


def plain(project: Any, port_variable: str, path: str) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", int(project.env.get(port_variable)), timeout=30)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        answer.read()
        return answer.status, dict(answer.getheaders())
    finally:
        conn.close()


def test_the_real_nginx_runs_as_the_upstream_image_under_prods_hardening(real_proxy: Any) -> None:
    cid = container(real_proxy.compose.project_name, "tls-proxy")
    assert "nginx version: nginx/1.22.1" in docker_exec(cid, "nginx", "-v")
    info = inspect(cid)
    assert info["Config"]["Image"] == "lakehouse-rehearsal/nginx:rehearsal"
    assert info["State"]["Health"]["Status"] == "healthy"  # prod's wget probe of /healthz
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    caps = sorted(c.removeprefix("CAP_") for c in host["CapAdd"])
    assert caps == ["CHOWN", "DAC_OVERRIDE", "NET_BIND_SERVICE", "SETGID", "SETUID"]
    # The master (pid 1 after the entrypoint's exec) has exactly those; the workers run as nginx.
    status = docker_exec(cid, "cat", "/proc/1/status")
    cap_eff = next(int(line.split()[1], 16) for line in status.splitlines()
                   if line.startswith("CapEff:"))  # fmt: skip
    assert cap_eff == sum(1 << CAP_BITS[c] for c in caps)
    top = subprocess.run(["docker", "top", cid, "-o", "pid,uid,args"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    rows = [line.split(None, 2) for line in top.splitlines()[1:]]
    assert [uid for _, uid, args in rows if args.startswith("nginx: master")] == ["0"], top
    workers = [uid for _, uid, args in rows if args.startswith("nginx: worker")]
    assert workers and set(workers) == {"101"}, top  # the image's nginx user
    # It loaded a key the root file system cannot read without DAC_OVERRIDE: 0600, operator's.
    key = Path(real_proxy.env.get("TLS_KEY_FILE")).stat()
    assert (key.st_uid, key.st_mode & 0o777) == (OPERATOR_UID, 0o600)


def test_https_through_the_real_proxy_reaches_the_real_superset_and_airflow(
    real_proxy: Any,
) -> None:
    status, headers, page = https(real_proxy, "SUPERSET_TLS_PORT", "/login/")
    assert status == 200 and SUPERSET_LOGIN_MARK in page, (status, page[:300])
    assert headers["Server"] == "nginx"  # server_tokens off: no version shown
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    status, _, page = https(real_proxy, "AIRFLOW_TLS_PORT", "/login/")
    assert status == 200 and AIRFLOW_LOGIN_MARK in page, (status, page[:300])
    # Plain HTTP: port 80 answers the health path and redirects the rest to HTTPS, and plain
    # HTTP sent to an HTTPS port is redirected too (nginx's 497).
    status, headers = plain(real_proxy, "PROXY_HTTP_PORT", "/superset/welcome/")
    assert status == 301 and headers["Location"] == "https://127.0.0.1/superset/welcome/"
    status, headers = plain(real_proxy, "SUPERSET_TLS_PORT", "/login/")
    assert status == 301 and headers["Location"].startswith("https://127.0.0.1:")
    status, _, page = https(real_proxy, "PROXY_HTTPS_PORT", "/")
    assert status == 200 and page.startswith("lakehouse: MinIO console, Spark, Trino")


def test_the_real_proxy_refuses_to_start_naming_a_missing_upstream_and_recovers(
    real_proxy: Any, real_app_stack: Any
) -> None:
    proxy = container(real_proxy.compose.project_name, "tls-proxy")
    trino = container(real_app_stack.compose.project_name, "trino")  # the busybox stand-in
    since = str(int(time.time()))
    subprocess.run(["docker", "stop", "-t", "2", trino], capture_output=True, check=True)
    try:
        subprocess.run(["docker", "restart", "-t", "5", proxy], capture_output=True, check=True)

        def refusal() -> str:
            logs = subprocess.run(["docker", "logs", "--since", since, proxy],
                                  capture_output=True, text=True).stderr  # fmt: skip
            return logs if "host not found in upstream" in logs else ""

        logs = wait_for("nginx's refusal", refusal, timeout=60, every=1)
        assert 'host not found in upstream "trino"' in logs, logs
    finally:
        subprocess.run(["docker", "start", trino], capture_output=True, check=True)
    wait_for("trino's stand-in healthy", lambda: health(trino) == "healthy", timeout=120)

    def proxy_back() -> bool:
        if inspect(proxy)["State"]["Status"] == "exited":
            subprocess.run(["docker", "start", proxy], capture_output=True)
        return health(proxy) == "healthy"

    wait_for("the proxy healthy again", proxy_back, timeout=180)
    status, _, _ = https(real_proxy, "TRINO_TLS_PORT", "/v1/info")
    assert status == 200


# ---- Prometheus -----------------------------------------------------------------------------
def prometheus_api(project: Any, path: str) -> Any:
    host, port = Services.of_project(project.compose.project_name).endpoint("prometheus", 9090)
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=30) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    return body["data"]


def targets(project: Any) -> dict[str, dict[str, Any]]:
    active = prometheus_api(project, "/api/v1/targets?state=active")["activeTargets"]
    return {t["labels"]["job"]: t for t in active}


def scraped(project: Any) -> dict[str, dict[str, Any]]:
    """The targets once every one of them has been scraped at least once."""
    found = targets(project)
    done = found and all(t["health"] != "unknown" for t in found.values())
    return found if done else {}


def test_the_real_prometheus_runs_its_own_version_as_nobody(real_app_stack: Any) -> None:
    cid = container(real_app_stack.compose.project_name, "prometheus")
    assert "prometheus, version 2.42.0" in docker_exec(cid, "prometheus", "--version")
    assert docker_exec(cid, "id", "-u").strip() == "65534"
    info = inspect(cid)
    assert info["Config"]["Image"] == "lakehouse-rehearsal/prometheus:rehearsal"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    build = prometheus_api(real_app_stack, "/api/v1/status/buildinfo")
    assert build["version"].startswith("2.42.0")


def test_prometheus_scrapes_the_real_stack_and_evaluates_the_plugins_rules(
    real_app_stack: Any,
) -> None:
    found = wait_for("every target scraped", lambda: scraped(real_app_stack), timeout=180)
    assert set(found) == {"prometheus", "minio", "spark-master", "lakehouse-ops"}
    assert found["prometheus"]["health"] == "up", found["prometheus"]
    # The real Spark master's PrometheusServlet, enabled by the mounted spark-defaults.conf.
    assert found["spark-master"]["health"] == "up", found["spark-master"]
    # `invoke serve` is not running on the host: the exporter target is down, and says why.
    assert found["lakehouse-ops"]["health"] == "down"
    assert found["lakehouse-ops"]["lastError"], found["lakehouse-ops"]
    groups = prometheus_api(real_app_stack, "/api/v1/rules")["groups"]
    rules = {r["name"]: r for g in groups if g["name"] == "lakehouse-ops" for r in g["rules"]}
    assert set(rules) == ALERTS
    assert all(r["health"] == "ok" for r in rules.values()), rules

    # The rule for an unreachable exporter sees the real `up` series: pending for its 15 min.
    def unavailable() -> list[dict[str, Any]]:
        alerts = prometheus_api(real_app_stack, "/api/v1/alerts")["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "LakehouseStatusUnavailable"]

    alerts = wait_for("LakehouseStatusUnavailable pending", unavailable, timeout=120)
    assert alerts[0]["state"] == "pending" and alerts[0]["labels"]["job"] == "lakehouse-ops"


def test_the_real_prometheus_refuses_a_broken_alert_rule_naming_file_and_rule(
    real_app_stack: Any, tmp_path: Path
) -> None:
    """What an operator who breaks alerts.yml sees: the real Prometheus (the stand-in would
    have started) exits 1 naming the file, the line, the group and the rule."""
    from lakehouse_monitoring import PACKAGE_DIR

    service = real_app_stack.compose.config()["services"]["prometheus"]
    config = PACKAGE_DIR / "config" / "prometheus"
    broken = tmp_path / "alerts.yml"
    broken.write_text((config / "alerts.yml").read_text().replace(
        "expr: lakehouse_backup_overdue == 1", "expr: lakehouse_backup_overdue =="))  # fmt: skip
    os.chmod(tmp_path, 0o755)
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
         "-v", f"{config / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro",
         "-v", f"{broken}:/etc/prometheus/alerts.yml:ro", "--tmpfs", "/prometheus:uid=65534",
         service["image"], *service["command"]],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    error = next(line for line in done.stderr.splitlines() if "loading groups failed" in line)
    assert 'err="/etc/prometheus/alerts.yml: ' in error, error  # then line:column
    assert (
        'group \\"lakehouse-ops\\", rule 2, \\"LakehouseBackupOverdue\\": could not parse '
        "expression" in error
    ), error
