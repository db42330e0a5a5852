"""Layer 5, analytics: the Superset (login; its Trino connection) and Airflow hops (their own
web APIs)."""

from __future__ import annotations

import base64
import urllib.error

from ..context import SmokeContext
from ..model import HopFailure, HopSkipped
from .web import Http, http_failure

SUPERSET_PORT, AIRFLOW_PORT = 8088, 8080  # inside the containers
DAG_ID = "lakehouse_daily"
SCHEDULER_HEARTBEAT_MAX_AGE = 120.0  # seconds


def hop_superset(ctx: SmokeContext) -> str:
    """Superset itself: its login page, the admin login (a JWT) and a CSRF token. The logged-in
    client is kept for the ``superset-trino`` hop."""
    host, port = ctx.services.endpoint("superset", SUPERSET_PORT)
    http = Http(f"http://{host}:{port}")
    try:
        status, _, page = http.request("GET", "/login/")
        if status != 200 or "superset" not in page.lower():
            raise HopFailure(f"Superset's login page answered {status} without Superset in it.")
        status, payload, _ = http.request(
            "POST",
            "/api/v1/security/login",
            {
                "username": ctx.secret("SUPERSET_ADMIN_USER"),
                "password": ctx.secret("SUPERSET_ADMIN_PASSWORD"),
                "provider": "db",
                "refresh": False,
            },
        )
        token = (payload or {}).get("access_token")
        if status != 200 or not token:
            raise HopFailure(
                f"Superset refused the admin login ({status}); check SUPERSET_ADMIN_USER and "
                "SUPERSET_ADMIN_PASSWORD."
            )
        http.headers["Authorization"] = f"Bearer {token}"
        status, payload, _ = http.request("GET", "/api/v1/security/csrf_token/")
        csrf = (payload or {}).get("result")
        if status != 200 or not csrf:
            raise HopFailure(f"Superset gave no CSRF token ({status}).")
        http.headers["X-CSRFToken"] = csrf
        http.headers["Referer"] = http.base + "/"
    except HopFailure:
        raise
    except (urllib.error.URLError, OSError) as exc:
        raise http_failure("superset", exc) from None
    ctx.state["superset_http"] = http
    return "login page, admin login and CSRF token passed"


def hop_superset_trino(ctx: SmokeContext) -> str:
    """Superset's connection to Trino (``test_connection``), with the ``superset`` hop's
    logged-in client. A hop of its own, so that a Trino stand-in makes only this step "not
    rehearsed" while Superset's own login is checked for real."""
    http = ctx.state.get("superset_http")
    if not isinstance(http, Http):
        raise HopSkipped("needs the superset hop's logged-in session.")
    uri = "trino://lakehouse-smoke@trino:8080/hive"
    try:
        status, payload, text = http.request(
            "POST",
            "/api/v1/database/test_connection/",
            {"database_name": ctx.run_id, "sqlalchemy_uri": uri, "engine": "trino"},
        )
    except (urllib.error.URLError, OSError) as exc:
        raise http_failure("superset", exc) from None
    if status != 200:
        message = (payload or {}).get("message") or text[:200]
        raise HopFailure(f"Superset cannot connect to Trino ({status}): {message}")
    return "test_connection to trino://trino:8080/hive passed"


def hop_airflow(ctx: SmokeContext) -> str:
    host, port = ctx.services.endpoint("airflow-webserver", AIRFLOW_PORT)
    http = Http(f"http://{host}:{port}")
    user, password = ctx.secret("AIRFLOW_ADMIN_USER"), ctx.secret("AIRFLOW_ADMIN_PASSWORD")
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    http.headers["Authorization"] = f"Basic {auth}"
    try:
        status, health, _ = http.request("GET", "/api/v1/health")
        if status != 200 or not isinstance(health, dict):
            raise HopFailure(f"Airflow's /api/v1/health answered {status}.")
        sched = health.get("scheduler") or {}
        beat = sched.get("latest_scheduler_heartbeat")
        age = _age_seconds(beat)
        if sched.get("status") != "healthy" or age is None or age > SCHEDULER_HEARTBEAT_MAX_AGE:
            raise HopFailure(
                f"the Airflow scheduler's last heartbeat is {beat or 'missing'} "
                f"({'never' if age is None else f'{int(age)} s ago'}); check airflow-scheduler."
            )
        status, errors, _ = http.request("GET", "/api/v1/importErrors")
        if status == 401:
            raise HopFailure(
                "Airflow refused the admin login (401); check AIRFLOW_ADMIN_USER and "
                "AIRFLOW_ADMIN_PASSWORD."
            )
        if status != 200 or not isinstance(errors, dict):
            raise HopFailure(f"Airflow's /api/v1/importErrors answered {status}.")
        if errors.get("total_entries"):
            first = (errors.get("import_errors") or [{}])[0]
            raise HopFailure(
                f"Airflow has {errors['total_entries']} DAG import error(s), first in "
                f"{first.get('filename', '?')}."
            )
        status, _dag, _ = http.request("GET", f"/api/v1/dags/{DAG_ID}")
        if status != 200:
            raise HopFailure(f"the {DAG_ID} DAG is not loaded in Airflow ({status}).")
    except HopFailure:
        raise
    except (urllib.error.URLError, OSError) as exc:
        raise http_failure("airflow-webserver", exc) from None
    return f"scheduler heartbeat {int(age)} s old, no import errors, DAG {DAG_ID} present"


def _age_seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (dt.datetime.now(dt.UTC) - when).total_seconds()
