"""Run the smoke hops against a deployed environment, clean up, report.

Each hop talks to its service the way a user's client would, from this host, through the
ports the environment publishes (object storage, metastore, Trino, Superset, Airflow,
ingestor), or inside the service's own container where the client lives there (Spark jobs
are submitted from the master container, dbt runs in the dbt container).

Everything a run creates carries the run id (``lakehouse_smoke_<UTC time>_<hex>``), so it
cannot collide with user data, and is removed in a ``finally`` even when a hop fails; what
could not be removed is reported (and fails the run).

A hop whose service runs a rehearsal stand-in (a ``lakehouse-rehearsal/busybox`` image) is
reported ``not rehearsed``, never ``passed``: its protocol is tested by the unit tests
against recorded answers instead.
"""

from __future__ import annotations

import datetime as _dt
import secrets as _secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .context import Hop, Services, SmokeContext
from .hops import HOPS
from .model import (
    FAILED,
    NOT_REHEARSED,
    PASSED,
    SKIPPED,
    CleanupResult,
    HopFailure,
    HopResult,
    HopSkipped,
    SmokeReport,
)

if TYPE_CHECKING:
    from ..project import Project

RUN_PREFIX = "lakehouse_smoke_"


def new_run_id(now: _dt.datetime | None = None) -> str:
    """``lakehouse_smoke_<yyyymmddHHMMSS>_<6 hex>``: unique, lower case, valid as a Hive and
    Trino schema name and in an S3 key."""
    now = now or _dt.datetime.now(_dt.UTC)
    return f"{RUN_PREFIX}{now:%Y%m%d%H%M%S}_{_secrets.token_hex(3)}"


def _hop_verdict(ctx: SmokeContext, hop: Hop) -> HopResult:
    started = time.monotonic()

    def result(verdict: str, cause: str = "", detail: str = "") -> HopResult:
        return HopResult(hop.name, hop.services, verdict, time.monotonic() - started, cause, detail)

    standins = [s for s in hop.services if (i := ctx.services.get(s)) is not None and i.standin]
    if standins:
        return result(
            NOT_REHEARSED,
            detail=f"{', '.join(standins)} {'is a' if len(standins) == 1 else 'are'} "
            "rehearsal stand-in(s); the protocol is tested against recorded answers",
        )
    for need in hop.needs:
        earlier = ctx.results.get(need)
        if earlier is None or earlier.verdict != PASSED:
            verdict = earlier.verdict if earlier else "missing"
            return result(SKIPPED, cause=f"needs the {need} hop, which is {verdict}.")
    try:
        detail = hop.run(ctx)
    except HopSkipped as exc:
        return result(SKIPPED, cause=exc.cause)
    except HopFailure as exc:
        return result(FAILED, cause=exc.cause)
    except Exception as exc:
        return result(FAILED, cause=describe_exception(exc))
    return result(PASSED, detail=detail)


def describe_exception(exc: BaseException) -> str:
    """One sentence for an unexpected client error (connection refused, timeout, ...)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused: the service is not listening."
    if isinstance(exc, TimeoutError):
        return "the service did not answer in time."
    return f"{type(exc).__name__}: {text[:300]}"


def run_hops(ctx: SmokeContext, hops: Sequence[Hop], only: Sequence[str] = ()) -> SmokeReport:
    """Run ``hops`` in order (only those named in ``only``, when given), then every clean-up
    registered, in reverse order, whatever happened."""
    report = SmokeReport(environment=ctx.environment, run_id=ctx.run_id, rehearsal=ctx.rehearsal)
    started = time.monotonic()
    try:
        for hop in hops:
            if only and hop.name not in only:
                continue
            res = _hop_verdict(ctx, hop)
            ctx.results[hop.name] = res
            report.hops.append(res)
    finally:
        while ctx.cleanups:
            what, action = ctx.cleanups.pop()
            try:
                action()
            except HopFailure as exc:
                report.cleanup.append(CleanupResult(what, False, exc.cause))
            except Exception as exc:
                report.cleanup.append(CleanupResult(what, False, describe_exception(exc)))
            else:
                report.cleanup.append(CleanupResult(what, True))
        report.seconds = time.monotonic() - started
    return report


def run_smoke(
    project: Project,
    only: Sequence[str] = (),
    run_id: str | None = None,
    *,
    within_stack: bool = False,
) -> SmokeReport:
    """Smoke-test the deployed environment of ``project``.

    ``within_stack`` (a restore drill's copy): run only the hops whose services are all part of
    the project's stack, the others are left out, not failed; and reach ports the copy does not
    publish at the container's address on its bridge network (the Docker host routes there)."""
    if within_stack:
        present = set(project.stack.services)
        inside = [h.name for h in HOPS if set(h.services) <= present]
        only = [n for n in (only or inside) if n in inside]
        if not only:
            return SmokeReport(
                environment=project.env.name, run_id=run_id or new_run_id(),
                rehearsal=project.rehearsal,
            )  # fmt: skip

    services = Services.of_project(project.compose.project_name, by_address=within_stack)
    ctx = SmokeContext(
        environment=project.env.name,
        values=project.env.get,
        services=services,
        run_id=run_id or new_run_id(),
        rehearsal=project.rehearsal,
    )
    return run_hops(ctx, HOPS, only)


def smoke_events(report: SmokeReport) -> list[Any]:
    """The events a smoke run gives plugins: one ``smoke.failed`` per failed hop (severity
    error, the hop's service), else one ``smoke.passed``."""
    from ..events import Event, EventKind

    events = []
    for hop in report.failed:
        events.append(
            Event(
                kind=EventKind.SMOKE_FAILED,
                environment=report.environment,
                service=hop.services[0] if hop.services else None,
                message=f"smoke hop {hop.name} failed: {hop.cause}",
                details={"hop": hop.name, "run_id": report.run_id, **hop.to_dict()},
            )
        )
    for item in report.cleanup_failed:
        events.append(
            Event(
                kind=EventKind.SMOKE_FAILED,
                environment=report.environment,
                message=f"smoke clean-up left {item.what}: {item.cause}",
                details={"cleanup": item.what, "run_id": report.run_id},
            )
        )
    if not events:
        events.append(
            Event(
                kind=EventKind.SMOKE_PASSED,
                environment=report.environment,
                message=report.summary(),
                details=report.to_dict(),
            )
        )
    return events
