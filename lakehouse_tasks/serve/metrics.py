"""``/metrics``: the status report in the Prometheus exposition format.

Built with the official client library (``prometheus_client``): a custom collector turns the
latest report into gauges at scrape time, so a scrape never runs docker and always agrees with
the page. Every metric carries ``environment``; names and labels are listed in
docs/STATUS_PAGE.md, and the monitoring plugin's alert rules and dashboard use them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _ts(text: Any) -> float | None:
    if not text:
        return None
    try:
        moment = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.timestamp()


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=["environment", *labels])


def families(doc: Mapping[str, Any]) -> list[GaugeMetricFamily]:
    """The metric families of one report document (:func:`.status.report_document`)."""
    env = str(doc.get("environment", ""))
    up = _gauge("lakehouse_service_up", "1 when the service's container is running", ["service"])
    healthy = _gauge(
        "lakehouse_service_healthy",
        "1 when the service is healthy (or running without a healthcheck, or a one-shot that "
        "exited 0)",
        ["service"],
    )
    restarts = _gauge(
        "lakehouse_service_restarts", "restart count of the service's container", ["service"]
    )
    for row in (doc.get("health") or {}).get("services") or []:
        service = str(row.get("service", ""))
        up.add_metric([env, service], 1.0 if row.get("state") == "running" else 0.0)
        healthy.add_metric([env, service], 1.0 if row.get("ok") else 0.0)
        restarts.add_metric([env, service], float(row.get("restarts") or 0))
    out = [up, healthy, restarts]

    deploys = [d for d in doc.get("deploys") or [] if d.get("result") == "ok"]
    deploy_time = _gauge(
        "lakehouse_last_deploy_timestamp_seconds", "when the last successful deploy ended", []
    )
    deploy_duration = _gauge(
        "lakehouse_last_deploy_duration_seconds", "how long the last successful deploy took", []
    )
    if deploys:
        last = deploys[0]
        stamp = _ts(last.get("time"))
        if stamp is not None:
            deploy_time.add_metric([env], stamp)
        if last.get("duration_s") is not None:
            deploy_duration.add_metric([env], float(last["duration_s"]))
    out += [deploy_time, deploy_duration]

    backups = doc.get("backups") or {}
    b_time = _gauge(
        "lakehouse_last_backup_timestamp_seconds", "when the last backup was taken", ["location"]
    )
    b_size = _gauge("lakehouse_last_backup_size_bytes", "size of the last backup", ["location"])
    b_duration = _gauge(
        "lakehouse_last_backup_duration_seconds", "how long the last backup took", ["location"]
    )
    b_ok = _gauge(
        "lakehouse_last_backup_success",
        "1 when the last backup run succeeded (and its last verify, if any, passed)",
        ["location"],
    )
    local = backups.get("local") or []
    if local:
        newest = local[0]
        stamp = _ts(newest.get("time"))
        if stamp is not None:
            b_time.add_metric([env, "local"], stamp)
        b_size.add_metric([env, "local"], float(newest.get("size") or 0))
        b_duration.add_metric([env, "local"], float(newest.get("duration_s") or 0))
        verified = newest.get("verified")
        ok = verified is None or bool(verified.get("ok"))
        last_run = (backups.get("schedule") or {}).get("last_run") or {}
        run_time = _ts(last_run.get("time"))
        if last_run.get("result") == "failed" and run_time and stamp and run_time > stamp:
            ok = False
        b_ok.add_metric([env, "local"], 1.0 if ok else 0.0)
    for copy in ((backups.get("offsite") or {}).get("copies") or [])[:1]:
        stamp = _ts(copy.get("time"))
        if stamp is not None:
            b_time.add_metric([env, "offsite"], stamp)
        b_size.add_metric([env, "offsite"], float(copy.get("size") or 0))
        b_duration.add_metric([env, "offsite"], float(copy.get("duration_s") or 0))
        b_ok.add_metric([env, "offsite"], 1.0 if copy.get("ok", True) else 0.0)
    overdue = _gauge(
        "lakehouse_backup_overdue", "1 when the scheduled backup is overdue (BACKUP_SCHEDULE)", []
    )
    overdue.add_metric([env], 1.0 if (backups.get("schedule") or {}).get("overdue") else 0.0)
    out += [b_time, b_size, b_duration, b_ok, overdue]

    drill = (backups.get("drill") or {}).get("last")
    d_time = _gauge("lakehouse_last_drill_timestamp_seconds", "when the last restore drill ran", [])
    d_ok = _gauge("lakehouse_last_drill_success", "1 when the last restore drill passed", [])
    d_restore = _gauge(
        "lakehouse_last_drill_restore_seconds", "measured restore time of the last drill", []
    )
    if drill:
        stamp = _ts(drill.get("time"))
        if stamp is not None:
            d_time.add_metric([env], stamp)
        d_ok.add_metric([env], 1.0 if drill.get("ok") else 0.0)
        if drill.get("restore_s") is not None:
            d_restore.add_metric([env], float(drill["restore_s"]))
    out += [d_time, d_ok, d_restore]

    smoke = (doc.get("smoke") or {}).get("last")
    s_time = _gauge("lakehouse_last_smoke_timestamp_seconds", "when the last smoke check ran", [])
    s_hop = _gauge(
        "lakehouse_smoke_hop_success", "1 when the hop passed in the last smoke check", ["hop"]
    )
    if smoke:
        stamp = _ts(smoke.get("time"))
        if stamp is not None:
            s_time.add_metric([env], stamp)
        for hop in smoke.get("hops") or []:
            s_hop.add_metric([env, str(hop.get("name", ""))], 1.0 if hop.get("ok") else 0.0)
    out += [s_time, s_hop]

    lock = _gauge("lakehouse_lock_held", "1 while the environment's deploy lock is held", [])
    lock.add_metric([env], 1.0 if (doc.get("lock") or {}).get("held") else 0.0)
    refreshed = _gauge(
        "lakehouse_status_timestamp_seconds", "when the served status was last refreshed", []
    )
    stamp = _ts(doc.get("time"))
    if stamp is not None:
        refreshed.add_metric([env], stamp)
    out += [lock, refreshed]
    return out


class ReportCollector(Collector):
    """Collects the families of whatever report ``current()`` returns at scrape time."""

    def __init__(self, current: Callable[[], Mapping[str, Any] | None]) -> None:
        self.current = current

    def collect(self) -> Iterator[GaugeMetricFamily]:
        doc = self.current()
        if doc:
            yield from families(doc)


def registry_for(current: Callable[[], Mapping[str, Any] | None]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(current))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
