"""The smoke check without an engine: the runner's verdicts and clean-up, and each protocol
client against recorded answers of the real protocols (Thrift metastore, Trino's HTTP
statement protocol, Superset's and Airflow's REST APIs)."""

from __future__ import annotations

import datetime as dt
import json
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lakehouse_tasks.smoke import FAILED, NOT_REHEARSED, PASSED, SKIPPED, HopFailure, HopSkipped
from lakehouse_tasks.smoke import hops as H
from lakehouse_tasks.smoke.context import Hop, ServiceInfo, Services, SmokeContext
from lakehouse_tasks.smoke.hms import MetastoreClient, ThriftError
from lakehouse_tasks.smoke.runner import new_run_id, run_hops, smoke_events


def services(**ports: dict[int, int]) -> Services:
    infos = {
        name: ServiceInfo(
            name,
            f"id-{name}",
            "lakehouse-rehearsal/spark:rehearsal",
            True,
            "running",
            {p: ("127.0.0.1", hp) for p, hp in mapping.items()},
        )
        for name, mapping in ports.items()
    }
    return Services(infos)


def context(svcs: Services, **values: str) -> SmokeContext:
    return SmokeContext(environment="dev", values=values.get, services=svcs, run_id=new_run_id())


# ---------------------------------------------------------------------------------- runner


def test_run_id_is_unique_and_a_valid_schema_name() -> None:
    a, b = new_run_id(), new_run_id()
    assert a != b and a.startswith("lakehouse_smoke_")
    assert a.replace("_", "").isalnum() and a == a.lower()


def test_a_stand_in_service_makes_its_hop_not_rehearsed_never_passed() -> None:
    svcs = Services(
        {
            "minio": ServiceInfo(
                "minio", "x", "lakehouse-rehearsal/busybox:rehearsal", True, "running"
            ),
        }
    )
    ran: list[str] = []
    hop = Hop("object-storage", ("minio",), lambda ctx: ran.append("ran") or "ok")
    report = run_hops(context(svcs), [hop])
    assert report.hop("object-storage").verdict == NOT_REHEARSED
    assert not ran, "a hop on a stand-in must not run"
    assert report.ok  # not rehearsed is not a failure


def test_a_failing_hop_names_its_cause_and_the_clean_up_still_runs() -> None:
    svcs = services(minio={9000: 1})
    removed: list[str] = []

    def creates_then_fails(ctx: SmokeContext) -> str:
        ctx.on_cleanup("canary", lambda: removed.append("canary"))
        raise HopFailure("bucket 'lakehouse' does not exist; run the minio-init job (redeploy).")

    def boom(ctx: SmokeContext) -> str:
        raise ConnectionRefusedError(111, "refused")

    report = run_hops(
        context(svcs),
        [
            Hop("object-storage", ("minio",), creates_then_fails),
            Hop("other", ("minio",), boom),
            Hop("after", ("minio",), lambda ctx: "fine", needs=("object-storage",)),
        ],
    )
    assert removed == ["canary"]
    assert [c.to_dict() for c in report.cleanup] == [{"what": "canary", "ok": True, "cause": None}]
    first = report.hop("object-storage")
    assert first.verdict == FAILED and "bucket 'lakehouse'" in first.cause
    assert report.hop("other").cause == "the connection was refused: the service is not listening."
    assert report.hop("after").verdict == SKIPPED
    assert "needs the object-storage hop" in report.hop("after").cause
    assert not report.ok
    events = smoke_events(report)
    assert [e.kind.value for e in events] == ["smoke.failed", "smoke.failed"]
    assert events[0].service == "minio" and events[0].level.name == "ERROR"


def test_a_clean_up_that_fails_fails_the_run() -> None:
    def leaves(ctx: SmokeContext) -> str:
        ctx.on_cleanup("schema x", lambda: (_ for _ in ()).throw(OSError("gone away")))
        return "done"

    report = run_hops(context(services(minio={})), [Hop("h", ("minio",), leaves)])
    assert report.hop("h").verdict == PASSED
    assert not report.ok and report.cleanup_failed[0].what == "schema x"
    assert "clean-up incomplete" in report.summary()


def test_a_stopped_service_fails_with_its_state() -> None:
    svcs = Services({"minio": ServiceInfo("minio", "x", "img", False, "exited")})
    report = run_hops(context(svcs), [Hop("object-storage", ("minio",), H.hop_object_storage)])
    assert report.hop("object-storage").cause == (
        "minio is not running (exited); start it or redeploy."
    )


def test_an_unpublished_port_skips_the_hop() -> None:
    report = run_hops(
        context(services(**{"hive-metastore": {}})),
        [Hop("metastore", ("hive-metastore",), H.hop_metastore)],
    )
    assert report.hop("metastore").verdict == SKIPPED
    assert "does not publish port 9083" in report.hop("metastore").cause


# ---------------------------------------------------------------------------------- Thrift


# Answers of a Hive metastore, byte for byte as hive_metastore.thrift's binary protocol
# frames them (strict header 0x8001 + REPLY).
def _reply(name: str, body: bytes) -> bytes:
    return struct.pack("!Ii", 0x80010002, len(name)) + name.encode() + struct.pack("!i", 1) + body


def _str(s: str) -> bytes:
    return struct.pack("!i", len(s)) + s.encode()


RECORDED: dict[str, bytes] = {
    # success: void (an empty struct)
    "create_database": _reply("create_database", b"\x00"),
    "drop_database": _reply("drop_database", b"\x00"),
    # success field 0 = Database{1: name, 3: locationUri}
    "get_database": _reply(
        "get_database",
        b"\x0c\x00\x00"
        + b"\x0b\x00\x01"
        + _str("NAME")
        + b"\x0b\x00\x03"
        + _str("s3a://w/x")
        + b"\x00"
        + b"\x00",
    ),
    # success field 0 = list<string> ["default"]
    "get_all_databases": _reply(
        "get_all_databases", b"\x0f\x00\x00\x0b" + struct.pack("!i", 1) + _str("default") + b"\x00"
    ),
}
ALREADY_EXISTS = _reply(
    "create_database",
    b"\x0c\x00\x01" + b"\x0b\x00\x01" + _str("Database x already exists") + b"\x00\x00",
)


@pytest.fixture
def fake_metastore() -> Iterator[tuple[int, list[str], dict[str, bytes]]]:
    calls: list[str] = []
    answers = dict(RECORDED)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while True:
                    head = conn.recv(8)
                    if len(head) < 8:
                        break
                    size = struct.unpack("!i", head[4:8])[0]
                    name = conn.recv(size).decode()
                    conn.recv(1 << 16)  # seqid + args: read and ignored
                    calls.append(name)
                    answer = (
                        answers[name].replace(b"NAME", b"")
                        if name != "get_database"
                        else (answers[name])
                    )
                    conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1], calls, answers
    finally:
        server.close()


def test_metastore_client_against_recorded_answers(fake_metastore: Any) -> None:
    port, calls, _ = fake_metastore
    with MetastoreClient("127.0.0.1", port) as hms:
        hms.create_database("x", location="s3a://w/x")
        assert hms.get_database("x") == {1: "NAME", 3: "s3a://w/x"}
        assert hms.get_all_databases() == ["default"]
        hms.drop_database("x")
    assert calls == ["create_database", "get_database", "get_all_databases", "drop_database"]


def test_metastore_exception_becomes_a_thrift_error(fake_metastore: Any) -> None:
    port, _, answers = fake_metastore
    answers["create_database"] = ALREADY_EXISTS
    with MetastoreClient("127.0.0.1", port) as hms, pytest.raises(ThriftError) as err:
        hms.create_database("x")
    assert err.value.name == "AlreadyExistsException"
    assert "already exists" in err.value.message


def test_metastore_hop_fails_naming_the_refusal(fake_metastore: Any) -> None:
    port, _, answers = fake_metastore
    answers["create_database"] = ALREADY_EXISTS
    report = run_hops(
        context(services(**{"hive-metastore": {9083: port}})),
        [Hop("metastore", ("hive-metastore",), H.hop_metastore)],
    )
    assert report.hop("metastore").verdict == FAILED
    assert "AlreadyExistsException" in report.hop("metastore").cause


def test_metastore_hop_on_a_port_that_speaks_no_thrift() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def close_at_once() -> None:
        conn, _ = server.accept()
        conn.close()

    threading.Thread(target=close_at_once, daemon=True).start()
    report = run_hops(
        context(services(**{"hive-metastore": {9083: server.getsockname()[1]}})),
        [Hop("metastore", ("hive-metastore",), H.hop_metastore)],
    )
    server.close()
    assert report.hop("metastore").verdict == FAILED
    assert "does not answer Thrift" in report.hop("metastore").cause


# ---------------------------------------------------------------------------------- HTTP fakes


class _Routes(BaseHTTPRequestHandler):
    routes: dict[tuple[str, str], Any] = {}
    seen: list[tuple[str, str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.loads(body) if body else None
        self.seen.append((method, self.path, payload))
        route = self.routes.get((method, self.path.split("?")[0]))
        if route is None:
            self.send_response(404)
            self.end_headers()
            return
        status, answer = route(self, payload) if callable(route) else route
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


@pytest.fixture
def http_fake() -> Iterator[tuple[int, type[_Routes]]]:
    handler = type("Handler", (_Routes,), {"routes": {}, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def airflow_routes(beat: str) -> dict[tuple[str, str], Any]:
    # Shapes of Airflow 2.11's stable REST API answers.
    return {
        ("GET", "/api/v1/health"): (
            200,
            {
                "metadatabase": {"status": "healthy"},
                "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": beat},
            },
        ),
        ("GET", "/api/v1/importErrors"): (200, {"import_errors": [], "total_entries": 0}),
        ("GET", "/api/v1/dags/lakehouse_daily"): (
            200,
            {"dag_id": "lakehouse_daily", "is_paused": True},
        ),
    }


def test_airflow_hop_passes_on_a_fresh_heartbeat(http_fake: Any) -> None:
    port, handler = http_fake
    handler.routes.update(airflow_routes(_now()))
    ctx = context(
        services(**{"airflow-webserver": {8080: port}, "airflow-scheduler": {}}),
        AIRFLOW_ADMIN_USER="admin",
        AIRFLOW_ADMIN_PASSWORD="pw",
    )
    assert "DAG lakehouse_daily present" in H.hop_airflow(ctx)


def test_airflow_hop_fails_on_a_stale_heartbeat_and_on_import_errors(http_fake: Any) -> None:
    port, handler = http_fake
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat()
    handler.routes.update(airflow_routes(stale))
    ctx = context(
        services(**{"airflow-webserver": {8080: port}}),
        AIRFLOW_ADMIN_USER="admin",
        AIRFLOW_ADMIN_PASSWORD="pw",
    )
    with pytest.raises(HopFailure, match=r"last heartbeat .* \(6\d\d s ago\)"):
        H.hop_airflow(ctx)
    handler.routes.update(airflow_routes(_now()))
    handler.routes[("GET", "/api/v1/importErrors")] = (
        200,
        {
            "import_errors": [{"filename": "/opt/airflow/dags/bad.py", "stack_trace": "..."}],
            "total_entries": 1,
        },
    )
    with pytest.raises(HopFailure, match=r"1 DAG import error.*bad\.py"):
        H.hop_airflow(ctx)


def test_superset_hops_log_in_then_test_the_trino_connection_with_that_session(
    http_fake: Any,
) -> None:
    port, handler = http_fake
    handler.routes.update(
        {
            ("GET", "/login/"): (200, "<html><title>Superset</title></html>"),
            ("POST", "/api/v1/security/login"): lambda h, body: (
                (200, {"access_token": "tok"})
                if body["password"] == "pw"
                else (401, {"message": "no"})
            ),
            ("GET", "/api/v1/security/csrf_token/"): (200, {"result": "csrf"}),
            ("POST", "/api/v1/database/test_connection/"): (200, {"message": "OK"}),
        }
    )
    svcs = services(superset={8088: port}, trino={})
    ctx = context(svcs, SUPERSET_ADMIN_USER="admin", SUPERSET_ADMIN_PASSWORD="pw")
    assert H.hop_superset(ctx) == "login page, admin login and CSRF token passed"
    assert not any(s[1] == "/api/v1/database/test_connection/" for s in handler.seen)
    assert "test_connection" in H.hop_superset_trino(ctx)
    posted = next(s for s in handler.seen if s[1] == "/api/v1/database/test_connection/")
    assert posted[2]["sqlalchemy_uri"] == "trino://lakehouse-smoke@trino:8080/hive"
    with pytest.raises(HopFailure, match="refused the admin login \\(401\\)"):
        H.hop_superset(context(svcs, SUPERSET_ADMIN_USER="admin", SUPERSET_ADMIN_PASSWORD="bad"))


def test_superset_trino_hop_names_trino_when_superset_cannot_connect(http_fake: Any) -> None:
    port, handler = http_fake
    handler.routes.update(
        {
            ("GET", "/login/"): (200, "<html><title>Superset</title></html>"),
            ("POST", "/api/v1/security/login"): (200, {"access_token": "tok"}),
            ("GET", "/api/v1/security/csrf_token/"): (200, {"result": "csrf"}),
            ("POST", "/api/v1/database/test_connection/"): (
                422,
                {"message": "Could not load database driver: TrinoEngineSpec"},
            ),
        }
    )
    ctx = context(
        services(superset={8088: port}, trino={}),
        SUPERSET_ADMIN_USER="admin",
        SUPERSET_ADMIN_PASSWORD="pw",
    )
    H.hop_superset(ctx)
    with pytest.raises(HopFailure, match=r"cannot connect to Trino \(422\): Could not load"):
        H.hop_superset_trino(ctx)


def test_superset_trino_is_not_rehearsed_on_a_trino_stand_in_while_superset_runs(
    http_fake: Any,
) -> None:
    """The real tier: real Superset, Trino a stand-in. Superset's own hop runs and passes;
    the Trino connection step is "not rehearsed", never "passed"."""
    port, handler = http_fake
    handler.routes.update(
        {
            ("GET", "/login/"): (200, "<html><title>Superset</title></html>"),
            ("POST", "/api/v1/security/login"): (200, {"access_token": "tok"}),
            ("GET", "/api/v1/security/csrf_token/"): (200, {"result": "csrf"}),
        }
    )
    svcs = services(superset={8088: port}, trino={})
    svcs.infos["trino"].image = "lakehouse-rehearsal/busybox:rehearsal"
    hops = [h for h in H.HOPS if h.name in ("superset", "superset-trino")]
    report = run_hops(
        context(svcs, SUPERSET_ADMIN_USER="admin", SUPERSET_ADMIN_PASSWORD="pw"), hops
    )
    verdicts = {h.name: h for h in report.hops}
    assert verdicts["superset"].verdict == "passed"
    assert verdicts["superset-trino"].verdict == "not rehearsed"
    assert "trino is a rehearsal stand-in" in verdicts["superset-trino"].detail
    assert not any(s[1] == "/api/v1/database/test_connection/" for s in handler.seen)


def _column(name: str, type_: str) -> dict[str, Any]:
    """A column as Trino's /v1/statement answers describe it."""
    return {"name": name, "type": type_, "typeSignature": {"rawType": type_, "arguments": []}}


def test_trino_hop_against_the_statement_protocol(http_fake: Any) -> None:
    """Trino's client protocol: POST /v1/statement, then follow nextUri until it is gone."""
    port, handler = http_fake
    executed: list[str] = []
    tables: dict[str, list[list[Any]]] = {}

    class StatementHandler(handler):  # type: ignore[misc, valid-type]
        def do_POST(self) -> None:
            sql = self.rfile.read(int(self.headers["Content-Length"])).decode()
            executed.append(sql)
            qid = f"q{len(executed)}"
            columns, data = [], []
            if sql == "SHOW CATALOGS":
                columns = [_column("Catalog", "varchar")]
                data = [["hive"], ["system"]]
            elif sql.startswith("SELECT"):
                columns = [_column("id", "integer"), _column("label", "varchar")]
                data = [[1, "one"], [2, "two"]]
            answer = {
                "id": qid,
                "infoUri": f"http://127.0.0.1:{port}/ui/{qid}",
                "nextUri": f"http://127.0.0.1:{port}/v1/statement/executing/{qid}/1",
                "stats": {"state": "QUEUED"},
            }
            tables[qid] = [columns, data]
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            qid = self.path.split("/")[-2]
            columns, data = tables[qid]
            answer: dict[str, Any] = {
                "id": qid,
                "infoUri": f"http://127.0.0.1:{port}/ui/{qid}",
                "stats": {"state": "FINISHED"},
            }
            if columns:
                answer.update({"columns": columns, "data": data})
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), StatementHandler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        svcs = services(trino={8080: port}, **{"hive-metastore": {}}, minio={})
        ctx = context(svcs)
        report = run_hops(ctx, [Hop("trino", ("trino",), H.hop_trino)])
    finally:
        server.shutdown()
        server.server_close()
    assert report.hop("trino").verdict == PASSED, report.hop("trino").cause
    schema = ctx.run_id
    assert executed[:5] == [
        "SHOW CATALOGS",
        f"CREATE SCHEMA hive.{schema}",
        f"CREATE TABLE hive.{schema}.canary (id integer, label varchar)",
        f"INSERT INTO hive.{schema}.canary VALUES (1, 'one'), (2, 'two')",
        f"SELECT id, label FROM hive.{schema}.canary ORDER BY id",
    ]
    # the clean-up dropped what the hop created
    assert executed[5:] == [
        f"DROP TABLE IF EXISTS hive.{schema}.canary",
        f"DROP SCHEMA IF EXISTS hive.{schema}",
    ]
    assert report.cleanup[0].ok


def test_ingestor_hop_reads_the_last_run(http_fake: Any) -> None:
    port, handler = http_fake
    svcs = services(ingestor={8000: port}, minio={})
    handler.routes[("GET", "/stats")] = (
        200,
        {"batches_written": 3, "uploads_ok": 3, "uploads_failed": 0, "last_batch": "b3.json"},
    )
    assert "3 uploads, none failed" in H.hop_ingestor(context(svcs))
    handler.routes[("GET", "/stats")] = (
        200,
        {"batches_written": 3, "uploads_ok": 0, "uploads_failed": 3, "last_batch": "b3.json"},
    )
    with pytest.raises(HopFailure, match="every ingestor upload failed"):
        H.hop_ingestor(context(svcs))


def test_a_drill_copy_reaches_an_unpublished_port_at_the_container_address() -> None:
    info = ServiceInfo("hive-metastore", "x", "img", True, "running", address="172.18.0.5")
    assert Services({"hive-metastore": info}, by_address=True).endpoint("hive-metastore", 9083) == (
        "172.18.0.5",
        9083,
    )
    with pytest.raises(HopSkipped, match="does not publish port 9083"):
        Services({"hive-metastore": info}).endpoint("hive-metastore", 9083)
