"""The alerts plugin: channel parsing, severity filtering, throttling, failure handling, and a
real JSON webhook on loopback receiving what Apprise sends."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lakehouse_alerts", reason="pip install -e plugins/lakehouse-alerts")
pytest.importorskip("apprise")

from lakehouse_alerts.plugin import (
    AlertSettings,
    AlertsPlugin,
    Channel,
    parse_alert_urls,
    settings_from_values,
    split_channel_urls,
)

from lakehouse_tasks.events import Event, EventKind, Severity
from lakehouse_tasks.hooks.manager import LakehousePlugins

REPO = Path(__file__).resolve().parents[2]
SECRET_URL = "slack://TOKENAAA/TOKENBBB/TOKENCCC"


class Recorder:
    """A sender that records what it was asked to deliver, or fails on demand."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = fail or set()

    def __call__(self, channel: Channel, title: str, body: str, notify_type: str) -> bool:
        if channel.scheme in self.fail:
            raise ConnectionError(f"cannot reach {channel.url}")
        self.sent.append((channel.scheme, title, notify_type))
        return True


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def unhealthy(service: str = "trino", environment: str = "staging") -> Event:
    return Event(EventKind.SERVICE_UNHEALTHY, environment, f"{service} is unhealthy", service)


def make_plugin(
    tmp_path: Path, urls: str, **values: str
) -> tuple[AlertsPlugin, Recorder, Clock, list[str]]:
    sender, clock, warnings = Recorder(), Clock(), []
    settings = settings_from_values({"ALERT_URLS": urls, **values}.get)
    plugin = AlertsPlugin(
        settings=settings,
        state_dir=tmp_path / "state",
        sender=sender,
        clock=clock,
        warn=warnings.append,
    )
    return plugin, sender, clock, warnings


# ---- parsing ----------------------------------------------------------------------------
def test_urls_split_on_spaces_and_commas_but_keep_query_lists() -> None:
    text = "json://127.0.0.1:8099/hook|warning, mailto://u:p@example.org?to=a@x.org,b@y.org|error msteams://a/b/c"
    assert split_channel_urls(text) == [
        "json://127.0.0.1:8099/hook|warning",
        "mailto://u:p@example.org?to=a@x.org,b@y.org|error",
        "msteams://a/b/c",
    ]


def test_each_channel_gets_its_own_minimum_or_the_default() -> None:
    settings = parse_alert_urls(
        "json://127.0.0.1:8099/hook|warning mailto://u:p@example.org|ERROR pagerduty://k@r",
        Severity.CRITICAL,
    )
    assert [(c.scheme, c.minimum) for c in settings.channels] == [
        ("json", Severity.WARNING),
        ("mailto", Severity.ERROR),
        ("pagerduty", Severity.CRITICAL),
    ]
    assert settings.problems == ()


def test_bad_severity_suffix_is_reported_without_the_url_and_falls_back() -> None:
    settings = parse_alert_urls(f"{SECRET_URL}|loud", Severity.WARNING)
    assert settings.channels[0].minimum is Severity.WARNING
    assert "loud" in settings.problems[0]
    assert "TOKEN" not in " ".join(settings.problems)
    assert "TOKEN" not in repr(settings.channels[0])


def test_defaults_and_bad_numbers() -> None:
    assert settings_from_values({}.get) == AlertSettings((), 300, ())
    bad = settings_from_values({"ALERT_THROTTLE_SECONDS": "soon", "ALERT_MIN_SEVERITY": "x"}.get)
    assert bad.throttle_seconds == 300
    assert len(bad.problems) == 2


# ---- severity filtering -----------------------------------------------------------------
def test_severity_filter_per_channel(tmp_path: Path) -> None:
    plugin, sender, _clock, _ = make_plugin(
        tmp_path, "json://127.0.0.1:1/a|warning mailto://u:p@example.org|error"
    )
    plugin.deliver(Event(EventKind.ROLLBACK, "staging", "rolled back"))  # WARNING
    plugin.deliver(Event(EventKind.DEPLOY_STARTED, "staging", "starting"))  # INFO
    plugin.deliver(Event(EventKind.DEPLOY_FAILED, "staging", "failed"))  # ERROR
    assert [(scheme, notify) for scheme, _t, notify in sender.sent] == [
        ("json", "warning"),
        ("json", "failure"),
        ("mailto", "failure"),
    ]


def test_default_minimum_comes_from_alert_min_severity(tmp_path: Path) -> None:
    plugin, sender, _clock, _ = make_plugin(
        tmp_path, "json://127.0.0.1:1/a", ALERT_MIN_SEVERITY="info"
    )
    plugin.deliver(Event(EventKind.DEPLOY_SUCCEEDED, "staging", "done"))
    assert [(s, n) for s, _t, n in sender.sent] == [("json", "success")]


# ---- throttling -------------------------------------------------------------------------
def test_same_key_within_window_is_delivered_once(tmp_path: Path) -> None:
    plugin, sender, clock, _ = make_plugin(tmp_path, "json://127.0.0.1:1/a")
    plugin.deliver(unhealthy())
    clock.now += 299
    plugin.deliver(unhealthy())
    plugin.deliver(unhealthy("minio"))  # another service: its own key
    assert len(sender.sent) == 2
    clock.now += 2  # the window (300 s) has passed
    plugin.deliver(unhealthy())
    assert len(sender.sent) == 3


def test_throttle_state_survives_a_new_process(tmp_path: Path) -> None:
    """Cron runs are separate processes: a fresh plugin on the same state dir is throttled."""
    first, sender1, _clock, _ = make_plugin(tmp_path, "json://127.0.0.1:1/a")
    first.deliver(unhealthy())
    second, sender2, clock2, _ = make_plugin(tmp_path, "json://127.0.0.1:1/a")
    clock2.now += 10
    second.deliver(unhealthy())
    assert len(sender1.sent) == 1 and sender2.sent == []
    state = json.loads((tmp_path / "state" / "alerts-throttle.json").read_text())
    assert list(state["delivered"]) == [unhealthy().key]


def test_recovery_resets_the_throttle_of_that_service(tmp_path: Path) -> None:
    plugin, sender, clock, _ = make_plugin(tmp_path, "json://127.0.0.1:1/a")
    plugin.deliver(unhealthy())
    plugin.deliver(unhealthy("minio"))
    clock.now += 5
    plugin.deliver(Event(EventKind.SERVICE_RECOVERED, "staging", "trino is healthy", "trino"))
    clock.now += 5
    plugin.deliver(unhealthy())  # alerts again at once
    plugin.deliver(unhealthy("minio"))  # still throttled: minio did not recover
    delivered = [title for _s, title, _n in sender.sent]
    assert len(delivered) == 3
    assert sum("service.unhealthy" in t for t in delivered) == 3


def test_failed_delivery_does_not_start_the_window(tmp_path: Path) -> None:
    plugin, sender, _clock, _ = make_plugin(tmp_path, "json://127.0.0.1:1/a")
    sender.fail = {"json"}
    plugin.deliver(unhealthy())
    sender.fail = set()
    plugin.deliver(unhealthy())
    assert len(sender.sent) == 1


# ---- failures never break the task and never show the URL ---------------------------------
def test_failing_channel_is_reported_by_scheme_only_and_others_still_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sender = Recorder(fail={"slack"})
    plugin = AlertsPlugin(
        settings=settings_from_values({"ALERT_URLS": f"{SECRET_URL} json://127.0.0.1:1/a"}.get),
        state_dir=tmp_path,
        sender=sender,
    )
    manager = LakehousePlugins(builtins=False, entry_points=False)
    manager.register(plugin, "alerts-test")
    manager.emit(unhealthy())  # must not raise
    err = capsys.readouterr().err
    assert "channel 1 (slack://)" in err
    assert "TOKEN" not in err
    assert [s for s, _t, _n in sender.sent] == ["json"]


def test_real_apprise_failure_does_not_print_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real Apprise, a closed port and a token in the URL: one line, scheme only."""
    import logging

    logging.basicConfig(level=logging.DEBUG, force=True)  # as if the host logged everything
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    url = f"json://127.0.0.1:{_closed_port()}/hook?token=SUPERSECRETTOKEN"
    plugin = AlertsPlugin(
        settings=settings_from_values({"ALERT_URLS": url}.get), state_dir=tmp_path
    )
    try:
        plugin.lakehouse_event(unhealthy(), None)
    finally:
        logging.getLogger().handlers.clear()
    captured = capsys.readouterr()
    assert "channel 1 (json://)" in captured.err
    assert "SUPERSECRETTOKEN" not in captured.err + captured.out
    assert "/hook" not in captured.err


def test_unknown_scheme_is_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = AlertsPlugin(
        settings=settings_from_values({"ALERT_URLS": "nosuchservice://secret@host"}.get),
        state_dir=tmp_path,
    )
    plugin.lakehouse_event(unhealthy(), None)
    err = capsys.readouterr().err
    assert "nosuchservice://" in err and "secret@host" not in err


# ---- settings from the environment named by the event -----------------------------------
def test_settings_come_from_the_events_environment(
    lakehouse_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(REPO / "env" / "variables.yaml", lakehouse_project / "env")
    dev = (REPO / "env" / "dev.env").read_text()
    (lakehouse_project / "env" / "dev.env").write_text(
        dev + "\nALERT_URLS=json://127.0.0.1:1/a|error\nALERT_THROTTLE_SECONDS=60\n"
    )
    monkeypatch.delenv("ALERT_URLS", raising=False)
    sender = Recorder()
    plugin = AlertsPlugin(sender=sender)
    plugin.lakehouse_event(Event(EventKind.ROLLBACK, "dev", "rolled back"), None)  # warning < error
    plugin.lakehouse_event(Event(EventKind.DEPLOY_FAILED, "dev", "failed"), None)
    assert [s for s, _t, _n in sender.sent] == ["json"]
    assert plugin.settings_for("dev").throttle_seconds == 60
    # the throttle state went to the project's state dir
    assert (lakehouse_project / ".lakehouse" / "alerts-throttle.json").is_file()


# ---- a real JSON webhook on loopback ----------------------------------------------------
def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server on 127.0.0.1 recording each JSON body POSTed to it."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"json://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_json_webhook_receives_an_error_event_once_per_window(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    plugin = AlertsPlugin(
        settings=settings_from_values({"ALERT_URLS": f"{url}|warning"}.get),
        state_dir=tmp_path,
    )
    manager = LakehousePlugins(builtins=False, entry_points=False)
    manager.register(plugin, "alerts-test")
    event = Event(EventKind.DEPLOY_FAILED, "staging", "trino did not become healthy", "trino")
    manager.emit(event)
    manager.emit(Event(EventKind.DEPLOY_FAILED, "staging", "trino still failing", "trino"))
    manager.emit(Event(EventKind.DEPLOY_STARTED, "staging", "info: below the channel minimum"))
    assert len(received) == 1
    body = received[0]["body"]
    assert received[0]["path"] == "/hook"
    assert body["type"] == "failure"
    assert "deploy.failed" in body["title"] and "[ERROR]" in body["title"]
    assert "staging/trino: trino did not become healthy" in body["message"]


def test_a_failed_or_missed_off_site_copy_is_alerted_and_a_success_is_not(tmp_path: Path) -> None:
    # the offsite plugin's events (plugins/lakehouse-offsite), through the default minimum
    plugin, sender, _clock, _ = make_plugin(tmp_path, "json://127.0.0.1:1/a")
    plugin.deliver(Event(EventKind.OFFSITE_COPY_SUCCEEDED, "prod", "copied (snapshot 1a2b)"))
    plugin.deliver(Event(EventKind.OFFSITE_COPY_FAILED, "prod", "off-site copy failed"))
    plugin.deliver(Event(EventKind.OFFSITE_COPY_MISSED, "prod", "off-site copy overdue"))
    plugin.deliver(Event(EventKind.DRILL_FAILED, "prod", "restore drill failed"))
    assert [notify for _s, _t, notify in sender.sent] == ["failure", "warning", "failure"]


def test_a_failed_smoke_hop_is_alerted_and_a_passing_run_is_not(tmp_path: Path) -> None:
    from lakehouse_tasks.smoke import FAILED, PASSED, HopResult, SmokeReport
    from lakehouse_tasks.smoke.runner import smoke_events

    plugin, sender, _clock, _ = make_plugin(tmp_path, "json://127.0.0.1:1/a")
    report = SmokeReport("staging", "lakehouse_smoke_x", rehearsal=False)
    report.hops.append(HopResult("object-storage", ("minio",), PASSED, 0.1))
    report.hops.append(
        HopResult("spark", ("spark-master",), FAILED, 3.0, "no ALIVE worker is registered")
    )
    for event in smoke_events(report):
        plugin.deliver(event)
    assert len(sender.sent) == 1
    scheme, title, notify = sender.sent[0]
    assert (scheme, notify) == ("json", "failure") and "smoke.failed" in title
    report.hops.pop()
    for event in smoke_events(report):  # smoke.passed is info: below the default warning
        plugin.deliver(event)
    assert len(sender.sent) == 1
