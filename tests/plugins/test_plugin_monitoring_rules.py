"""The monitoring plugin and `invoke serve`'s /metrics together: the alert rules pass promtool's
own unit tests, Prometheus accepts the configuration, the exposition passes promtool's lint, and
the dashboard and rules use only metrics /metrics really serves.

promtool comes from Debian's ``prometheus`` package, which ``scripts/setup --test`` installs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from lakehouse_monitoring import PACKAGE_DIR
from lakehouse_monitoring import plugin as monitoring

from lakehouse_tasks.serve import metrics
from tests.unit.test_serve import DOC

PROMETHEUS = PACKAGE_DIR / "config" / "prometheus"
DASHBOARD = PACKAGE_DIR / "config" / "grafana" / "dashboards" / "lakehouse-overview.json"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail(
            "promtool is missing: scripts/setup --test installs Debian's prometheus package"
        )
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, input=stdin, cwd=PROMETHEUS, timeout=60
    )


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    check = promtool("check", "rules", "alerts.yml")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 5 rules found" in check.stdout
    run = promtool("test", "rules", "alerts.test.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_prometheus_accepts_the_configuration() -> None:
    run = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_exposition_passes_promtool_lint() -> None:
    body = metrics.exposition(metrics.registry_for(lambda: DOC)).decode()
    run = promtool("check", "metrics", stdin=body)
    assert run.returncode == 0, run.stdout + run.stderr


def served_metric_names() -> set[str]:
    return {family.name for family in metrics.families(DOC)}


def test_the_rules_and_the_dashboard_use_only_served_metrics() -> None:
    served = served_metric_names()
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"][0]["rules"]
    exprs = [r["expr"] for r in rules]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs += [t["expr"] for p in panels for t in p.get("targets", [])]
    used = {name for e in exprs for name in re.findall(r"\blakehouse_[a-z_]+", e)}
    assert used and used <= served, used - served
    alerts = {r["alert"] for r in rules}
    assert {"LakehouseBackupStale", "LakehouseSmokeHopFailed"} <= alerts
    titles = {p["title"] for p in panels}
    assert {"Age of the last backup", "Smoke hops", "Services healthy"} <= titles


def test_prometheus_mounts_the_rules_and_the_scrape_token(tmp_path: Path) -> None:
    scrape = tmp_path / "serve-scrape"
    scrape.mkdir()
    rendered = monitoring.render_compose_file(tmp_path / "out", scrape_dir=scrape)
    prometheus = yaml.safe_load(rendered.read_text())["services"]["prometheus"]
    volumes = prometheus["volumes"]
    assert f"{PROMETHEUS}/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes
    assert f"{scrape.resolve()}:/etc/prometheus/lakehouse-serve:ro" in volumes
    assert prometheus["extra_hosts"] == ["host.docker.internal:host-gateway"]


def test_the_scrape_token_is_0600_and_belongs_to_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakehouse_tasks.serve import auth

    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    auth.new_token(tmp_path)
    path = auth.scrape_token_path(tmp_path)
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    if os.geteuid() == 0:
        assert (info.st_uid, path.parent.stat().st_uid) == (auth.PROMETHEUS_UID,) * 2
    scrape = auth.load_scrape_token(tmp_path)
    assert scrape and scrape != auth.load_token(tmp_path)
