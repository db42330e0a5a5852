"""``invoke serve`` without an engine: the report, the token gate, /metrics, the sample history
and the refusals. The page in a real browser against a real stack: tests/engine/test_serve_engine.py.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from invoke import Context, Exit
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from lakehouse_tasks.errors import ExitCode, LakehouseError
from lakehouse_tasks.serve import auth, metrics, sections, status
from lakehouse_tasks.serve.app import WRONG_TOKEN, Refresher, bind_socket, create_app
from lakehouse_tasks.serve.auth import COOKIE_NAME, Gate
from lakehouse_tasks.serve.samples import SampleStore
from lakehouse_tasks.snapshots import HealthSnapshot, ServiceHealth

NOW = _dt.datetime(2026, 12, 1, 12, 0, tzinfo=_dt.UTC)


def snapshot(at: _dt.datetime = NOW, *, minio: str = "running", cpu: float = 1.5) -> HealthSnapshot:
    rows = (
        ServiceHealth(
            service="minio",
            state=minio,
            health="healthy" if minio == "running" else "none",
            exit_code=None if minio == "running" else 137,
            restart_count=2,
            uptime_s=90.0,
            cpu_percent=cpu,
            mem_used=64 * 1024**2,
            mem_limit=512 * 1024**2,
            url="http://localhost:9001/",
        ),
        ServiceHealth(service="minio-init", state="exited", exit_code=0, oneshot=True),
        ServiceHealth(service="trino", state="missing"),
    )
    return HealthSnapshot(environment="dev", project="lakehouse-dev", rows=rows, time=at)


class FakeEnv:
    name = "dev"

    def __init__(self, root: Path, secret: str) -> None:
        self.root = root
        self.secret = secret
        self.values = {"BACKUP_DIR": str(root / "backups"), "BACKUP_SCHEDULE": "daily"}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    @property
    def secret_values(self) -> frozenset[str]:
        return frozenset({self.secret})

    def flag(self, name: str, default: bool = False) -> bool:
        return default


class FakeProject:
    rehearsal = True

    def __init__(self, root: Path, secret: str) -> None:
        self.env = FakeEnv(root, secret)

        class Compose:
            project_name = "lakehouse-dev"

        self.compose = Compose()


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# ---- the report ----------------------------------------------------------------------------
def test_deploys_say_who_deployed_and_how_long_it_took(tmp_path: Path, state: Path) -> None:
    write_jsonl(
        state / "history" / "dev.jsonl",
        [
            {
                "id": "20261201-110000-aaaa",
                "environment": "dev",
                "time": "2026-12-01T11:00:40+00:00",
                "kind": "deploy",
                "config_hash": "a" * 16,
                "project_name": "lakehouse-dev",
                "services": ["minio", "trino"],
                "images": {},
            }
        ],
    )
    write_jsonl(
        state / "audit.jsonl",
        [
            {
                "time": "2026-12-01T11:00:00+00:00",
                "user": "ana",
                "host": "ops1",
                "environment": "dev",
                "task": "deploy",
                "arguments": {},
                "result": "ok",
                "exit_code": 0,
                "duration_s": 41.2,
                "commit": "abc",
            },
            {
                "time": "2026-12-01T11:30:00+00:00",
                "user": "bo",
                "host": "ops1",
                "environment": "dev",
                "task": "deploy",
                "arguments": {},
                "result": "failed",
                "exit_code": 4,
                "duration_s": 12.0,
                "commit": "def",
                "error": "trino did not become healthy",
            },
        ],
    )
    deploys = sections.deploys_section(tmp_path, "dev")["deploys"]
    assert [(d["user"], d["result"], d["duration_s"]) for d in deploys] == [
        ("bo", "failed", 12.0),
        ("ana", "ok", 41.2),
    ]
    assert deploys[1]["id"] == "20261201-110000-aaaa"


def test_events_are_the_last_day_of_this_environment_newest_first(
    tmp_path: Path, state: Path
) -> None:
    def event(hours_ago: float, env: str = "dev", message: str = "m") -> dict[str, Any]:
        at = NOW - _dt.timedelta(hours=hours_ago)
        return {"kind": "service.exited", "environment": env, "time": at.isoformat(),
                "severity": "error", "message": message, "service": "minio"}  # fmt: skip

    write_jsonl(
        state / "events.jsonl",
        [
            event(30, message="old"),
            event(2, message="two"),
            event(1, "prod"),
            event(0.5, message="half"),
        ],
    )
    found = sections.events_section(tmp_path, "dev", NOW)
    assert [e["message"] for e in found] == ["half", "two"]


def test_a_secret_in_free_text_never_reaches_the_document(tmp_path: Path, state: Path) -> None:
    secret = "s3cr3t-value-0123456789"
    project = FakeProject(tmp_path, secret)
    slow = {"events": [{"message": f"login failed with {secret}"}], "errors": [f"x {secret}"]}
    report = status.build_report(project, snapshot(), slow, [], refresh_s=5)  # type: ignore[arg-type]
    text = json.dumps(status.report_document(report, project.env))  # type: ignore[arg-type]
    assert secret not in text
    assert "login failed with ********" in text
    assert '"service":"minio"' in text.replace(" ", "")  # names are not scrubbed


def test_plots_carry_cpu_and_memory_per_service_and_backup_runs() -> None:
    samples = [
        {"t": 100.0, "services": {"minio": [1.0, 1024**2]}},
        {"t": 160.0, "services": {"minio": [3.0, 2 * 1024**2]}},
    ]
    slow = {
        "backups": {
            "local": [
                {"time": "2026-12-01T11:00:00+00:00", "size": 2 * 1024**2, "duration_s": 9.0},
                {"time": "2026-12-01T10:00:00+00:00", "size": 1024**2, "duration_s": 7.0},
            ]
        },
        "deploys": [{"time": "2026-12-01T09:00:00+00:00", "duration_s": 30.0}],
    }
    plots = status.plot_series(samples, slow)
    assert plots["cpu"]["minio"] == [[100.0, 1.0], [160.0, 3.0]]
    assert plots["memory_mib"]["minio"] == [[100.0, 1.0], [160.0, 2.0]]
    assert [p[1] for p in plots["backup_size_mib"]] == [1.0, 2.0]  # oldest first
    assert [p[1] for p in plots["backup_duration_s"]] == [7.0, 9.0]
    assert [p[1] for p in plots["deploy_duration_s"]] == [30.0]


def test_no_smoke_run_and_no_offsite_copy_are_said_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # its own state dir: engine tests of this session may have logged dev smoke runs already
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    env = FakeEnv(tmp_path, "x")
    assert sections.smoke_section(env)["message"] == "no smoke run yet"  # type: ignore[arg-type]
    assert sections.offsite_section(env)["message"] == "no off-site copy yet"  # type: ignore[arg-type]
    assert sections.drill_section(env)["message"] == "no restore drill yet"  # type: ignore[arg-type]


# ---- the sample history ----------------------------------------------------------------------
def test_the_sample_history_stays_bounded_on_disk_and_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "dev.samples.jsonl"
    store = SampleStore(path, keep=10, every=60)
    kept = sum(
        store.add(snapshot(NOW + _dt.timedelta(seconds=5 * i), cpu=float(i))) for i in range(600)
    )
    assert kept == 50  # one sample a minute over 50 minutes of 5 s refreshes
    assert len(store) == 10
    assert len(path.read_text().splitlines()) < 20
    again = SampleStore(path, keep=10, every=60)
    assert [s["t"] for s in again] == [s["t"] for s in store]  # a restart keeps the plots


# ---- the token gate ------------------------------------------------------------------------
DOC = {
    "environment": "dev",
    "time": NOW.isoformat(),
    "health": status.health_section(snapshot()),
    "lock": {"held": True, "state": "held"},
    "backups": {
        "local": [
            {
                "time": "2026-12-01T11:00:00+00:00",
                "size": 5000,
                "duration_s": 12.5,
                "verified": {"ok": False, "time": "2026-12-01T11:05:00+00:00", "label": "FAILED"},
            }
        ],
        "schedule": {"overdue": True},
    },
    "smoke": {
        "last": {
            "time": "2026-12-01T11:50:00+00:00",
            "hops": [{"name": "trino", "ok": True}, {"name": "superset", "ok": False}],
        }
    },
    "deploys": [{"time": "2026-12-01T10:00:00+00:00", "duration_s": 33.0, "result": "ok"}],
}


def client(token: str | None) -> TestClient:
    return TestClient(create_app("dev", lambda: DOC, Gate(token)), follow_redirects=False)


def test_on_loopback_the_page_and_api_need_no_token() -> None:
    c = client(None)
    assert c.get("/").status_code == 200
    assert c.get("/api/status").json()["environment"] == "dev"


def test_with_a_token_nothing_is_shown_without_it() -> None:
    token = "t" * 43
    c = client(token)
    assert c.get("/").status_code == 303
    assert c.get("/").headers["location"] == "login"
    answer = c.get("/api/status")
    assert answer.status_code == 401 and "minio" not in answer.text
    assert c.get("/metrics").status_code == 401
    assert c.get(f"/api/status?token={token}").status_code == 401  # never in a URL


def test_a_wrong_token_is_one_sentence_and_401() -> None:
    c = client("t" * 43)
    answer = c.post(
        "/login",
        content="token=wrong",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 401
    assert "That token is wrong" in answer.text
    assert WRONG_TOKEN in answer.text.replace("&#x27;", "'").replace("&#96;", "`")
    assert COOKIE_NAME not in answer.headers.get("set-cookie", "")


def test_the_sign_in_form_sets_a_cookie_that_is_not_the_token() -> None:
    token = "abcd" + "t" * 39
    c = client(token)
    answer = c.post(
        "/login",
        content=f"token={token}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert token not in cookie
    assert c.get("/api/status").status_code == 200  # the client keeps the cookie
    page = c.get("/")
    assert page.status_code == 200 and token not in page.text


def test_a_bearer_header_works_for_scripts_and_prometheus() -> None:
    token = "t" * 43
    c = client(token)
    answer = c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_the_token_file_is_0600_and_shown_only_by_its_first_characters(
    tmp_path: Path, state: Path
) -> None:
    path, hint = auth.new_token(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    token = auth.load_token(tmp_path)
    assert token and len(token) >= 32 and hint == token[:4] + "…"


def test_a_token_file_readable_by_others_is_refused(tmp_path: Path, state: Path) -> None:
    path, _ = auth.new_token(tmp_path)
    os.chmod(path, 0o644)
    with pytest.raises(LakehouseError) as caught:
        auth.load_token(tmp_path)
    assert caught.value.exit_code == ExitCode.PREFLIGHT_FAILED
    assert "chmod 600" in caught.value.message


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.0.2.10", False),
        ("::", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert auth.is_loopback(address) is loopback


# ---- /metrics ------------------------------------------------------------------------------
def test_metrics_are_prometheus_exposition_with_the_report_values() -> None:
    text = client(None).get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({"environment": "dev", **labels}.items())))]

    assert value("lakehouse_service_up", service="minio") == 1
    assert value("lakehouse_service_up", service="trino") == 0
    assert value("lakehouse_service_healthy", service="minio-init") == 1
    assert value("lakehouse_service_restarts", service="minio") == 2
    assert value("lakehouse_last_deploy_duration_seconds") == 33
    assert value("lakehouse_last_backup_size_bytes", location="local") == 5000
    assert value("lakehouse_last_backup_success", location="local") == 0  # verify failed
    assert value("lakehouse_backup_overdue") == 1
    assert value("lakehouse_smoke_hop_success", hop="superset") == 0
    assert value("lakehouse_smoke_hop_success", hop="trino") == 1
    assert value("lakehouse_lock_held") == 1


# ---- the refresher -------------------------------------------------------------------------
def test_a_stopped_service_is_red_in_the_next_report(tmp_path: Path, state: Path) -> None:
    project = FakeProject(tmp_path, "secret-value")
    shots = iter([snapshot(), snapshot(NOW + _dt.timedelta(seconds=5), minio="exited")])
    refresher = Refresher(
        project,  # type: ignore[arg-type]
        SampleStore(tmp_path / "s.jsonl", every=0),
        take=lambda *_a, **_k: next(shots),
    )
    first = refresher.refresh()
    second = refresher.refresh()
    minio = next(r for r in first["health"]["services"] if r["service"] == "minio")
    assert minio["ok"] and minio["status"] == "healthy"
    minio = next(r for r in second["health"]["services"] if r["service"] == "minio")
    assert not minio["ok"] and minio["status"] == "exited"
    assert len(second["plots"]["cpu"]["minio"]) == 1  # an exited container has no sample


def test_an_engine_failure_keeps_the_last_report_and_says_why(tmp_path: Path, state: Path) -> None:
    project = FakeProject(tmp_path, "secret-value")
    calls = iter([snapshot()])

    def take(*_a: Any, **_k: Any) -> HealthSnapshot:
        try:
            return next(calls)
        except StopIteration:
            raise LakehouseError("The Docker engine is not reachable; start it.", 5) from None

    refresher = Refresher(project, SampleStore(tmp_path / "s.jsonl"), take=take)  # type: ignore[arg-type]
    refresher.refresh()
    doc = refresher.refresh()
    assert doc["health"]["summary"] == "2/3 healthy"
    assert doc["errors"] == ["health: The Docker engine is not reachable; start it."]


# ---- refusals of the task ------------------------------------------------------------------
def test_a_port_in_use_is_one_sentence_and_exit_3() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(LakehouseError) as caught:
            bind_socket("127.0.0.1", port)
    finally:
        holder.close()
    assert caught.value.exit_code == ExitCode.PREFLIGHT_FAILED
    assert caught.value.message == (
        f"Port {port} on 127.0.0.1 is already in use; stop what listens there or pass another "
        "--port (--port 0 picks a free one)."
    )


def run_serve(capsys: pytest.CaptureFixture[str], **flags: Any) -> tuple[int, str]:
    from lakehouse_tasks.tasks.serve import serve

    with pytest.raises(Exit) as caught:
        serve(Context(), env="dev", **flags)
    return caught.value.code, capsys.readouterr().err


def test_a_non_loopback_bind_without_a_token_is_refused(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_serve(capsys, bind="0.0.0.0")
    assert code == ExitCode.REFUSED
    assert "--bind 0.0.0.0 is not a loopback address and no token exists" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_bind_that_is_not_an_address_is_bad_input(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_serve(capsys, bind="everywhere")
    assert code == ExitCode.BAD_INPUT
    assert "--bind takes an IP address" in err


def test_the_scrape_token_opens_metrics_and_nothing_else() -> None:
    token, scrape = "t" * 43, "s" * 43
    c = TestClient(create_app("dev", lambda: DOC, Gate(token, scrape)), follow_redirects=False)
    bearer = {"Authorization": f"Bearer {scrape}"}
    assert c.get("/metrics", headers=bearer).status_code == 200
    assert c.get("/api/status", headers=bearer).status_code == 401
    assert c.get("/", headers=bearer).status_code == 303


def test_offsite_copies_and_the_last_drill_come_from_their_state_files(
    tmp_path: Path, state: Path
) -> None:
    env = FakeEnv(tmp_path, "x")
    (state / "drills").mkdir(parents=True)
    (state / "drills" / "dev-last.json").write_text(
        json.dumps(
            {
                "started": "2026-12-01T11:00:00+00:00",
                "ok": True,
                "backup": "dev-1",
                "restore_seconds": 42.5,
                "problem": "",
            }
        )
    )
    (state / "offsite-dev.json").write_text(
        json.dumps(
            {
                "last_success": "2026-12-01T10:01:00+00:00",
                "last": {"backup": "dev-1", "seconds": 7.5},
            }
        )
    )
    local = [{"id": "dev-1", "time": "2026-12-01T10:00:00+00:00", "size": 900,
              "offsite": {"short_id": "ab12cd34", "repository": "sftp:x", "time": "2026-12-01T10:01:00+00:00"}},
             {"id": "dev-0", "time": "2026-12-01T09:00:00+00:00", "size": 800, "offsite": None}]  # fmt: skip
    offsite = sections.offsite_section(env, local)  # type: ignore[arg-type]
    assert [(c["id"], c["snapshot"], c["duration_s"]) for c in offsite["copies"]] == [
        ("dev-1", "ab12cd34", 7.5)
    ]
    drill = sections.drill_section(env)["last"]  # type: ignore[arg-type]
    assert drill["ok"] and drill["restore_s"] == 42.5 and drill["backup"] == "dev-1"
    doc = {"environment": "dev", "backups": {"offsite": offsite, "drill": {"last": drill}}}
    text = metrics.exposition(metrics.registry_for(lambda: doc)).decode()
    assert 'lakehouse_last_backup_size_bytes{environment="dev",location="offsite"} 900.0' in text
    assert 'lakehouse_last_drill_restore_seconds{environment="dev"} 42.5' in text


def test_a_failed_offsite_copy_is_said_and_counts_as_failed(tmp_path: Path, state: Path) -> None:
    env = FakeEnv(tmp_path, "x")
    state.mkdir(parents=True, exist_ok=True)
    (state / "offsite-dev.json").write_text(
        json.dumps(
            {
                "last_success": "2026-12-01T08:00:00+00:00",
                "last_failure": "2026-12-01T10:00:00+00:00",
                "failure": "The off-site repository R cannot be reached",
                "failed_backup": "dev-2",
            }
        )
    )
    offsite = sections.offsite_section(env, [])  # type: ignore[arg-type]
    assert offsite["failure"]["error"].startswith("The off-site repository R cannot be reached")
    doc = {"environment": "dev", "backups": {"offsite": offsite}}
    text = metrics.exposition(metrics.registry_for(lambda: doc)).decode()
    assert 'lakehouse_last_backup_success{environment="dev",location="offsite"} 0.0' in text


def test_the_last_smoke_run_is_read_back_from_its_events(tmp_path: Path, state: Path) -> None:
    env = FakeEnv(tmp_path, "x")
    assert sections.smoke_section(env)["message"] == "no smoke run yet"  # type: ignore[arg-type]

    def event(kind: str, run: str, minute: int, **details: Any) -> dict[str, Any]:
        return {"kind": kind, "environment": "dev", "time": f"2026-12-01T11:{minute:02d}:00+00:00",
                "message": f"{kind} {details.get('hop', '')}", "details": {"run_id": run, **details}}  # fmt: skip

    passed = event("smoke.passed", "r1", 0, hops=[
        {"hop": "minio", "verdict": "passed", "seconds": 0.5},
        {"hop": "trino", "verdict": "not rehearsed", "seconds": 0.0}])  # fmt: skip
    write_jsonl(state / "events.jsonl", [passed])
    last = sections.smoke_section(env)["last"]  # type: ignore[arg-type]
    assert last["ok"] and [(h["name"], h["ok"]) for h in last["hops"]] == [
        ("minio", True), ("trino", True)]  # fmt: skip
    write_jsonl(state / "events.jsonl", [
        passed, event("smoke.failed", "r2", 5, hop="superset", seconds=1.0),
        event("smoke.failed", "r2", 5, hop="trino", seconds=2.0)])  # fmt: skip
    last = sections.smoke_section(env)["last"]  # type: ignore[arg-type]
    assert not last["ok"] and sorted(h["name"] for h in last["hops"]) == ["superset", "trino"]
    doc = {"environment": "dev", "smoke": {"last": last}}
    text = metrics.exposition(metrics.registry_for(lambda: doc)).decode()
    assert 'lakehouse_smoke_hop_success{environment="dev",hop="superset"} 0.0' in text
