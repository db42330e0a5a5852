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
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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

STANDIN_IMAGE_PREFIX = "lakehouse-rehearsal/busybox"
RUN_PREFIX = "lakehouse_smoke_"


def new_run_id(now: _dt.datetime | None = None) -> str:
    """``lakehouse_smoke_<yyyymmddHHMMSS>_<6 hex>``: unique, lower case, valid as a Hive and
    Trino schema name and in an S3 key."""
    now = now or _dt.datetime.now(_dt.UTC)
    return f"{RUN_PREFIX}{now:%Y%m%d%H%M%S}_{_secrets.token_hex(3)}"


@dataclass
class ServiceInfo:
    """The running container of one service, as the smoke check sees it."""

    service: str
    container_id: str
    image: str
    running: bool
    state: str
    ports: dict[int, tuple[str, int]] = field(default_factory=dict)  # container port -> host

    @property
    def standin(self) -> bool:
        return self.image.startswith(STANDIN_IMAGE_PREFIX)


class Services:
    """service name -> :class:`ServiceInfo`, read with one ``docker ps`` + one ``inspect``."""

    def __init__(self, infos: dict[str, ServiceInfo]) -> None:
        self.infos = infos

    @classmethod
    def of_project(cls, project_name: str, docker_cmd: Sequence[str] = ("docker",)) -> Services:
        from .. import docker

        rows = docker.project_containers(docker_cmd, project_name)
        inspected = docker.inspect_containers(docker_cmd, [r["ID"] for r in rows])
        infos: dict[str, ServiceInfo] = {}
        for data in inspected:
            labels = data.get("Config", {}).get("Labels") or {}
            service = labels.get("com.docker.compose.service")
            if not service:
                continue
            state = data.get("State", {})
            ports: dict[int, tuple[str, int]] = {}
            for key, bindings in (data.get("NetworkSettings", {}).get("Ports") or {}).items():
                if not bindings or not key.endswith("/tcp"):
                    continue
                host_ip = bindings[0].get("HostIp") or "127.0.0.1"
                if host_ip in {"0.0.0.0", "::", ""}:
                    host_ip = "127.0.0.1"
                ports[int(key.split("/")[0])] = (host_ip, int(bindings[0]["HostPort"]))
            info = ServiceInfo(
                service=service,
                container_id=data.get("Id", ""),
                image=data.get("Config", {}).get("Image", ""),
                running=bool(state.get("Running")),
                state=str(state.get("Status", "")),
                ports=ports,
            )
            # Prefer a running container when a service has several (scaled or re-created).
            if service not in infos or (info.running and not infos[service].running):
                infos[service] = info
        return cls(infos)

    def get(self, service: str) -> ServiceInfo | None:
        return self.infos.get(service)

    def require(self, service: str) -> ServiceInfo:
        info = self.infos.get(service)
        if info is None:
            raise HopFailure(f"{service} has no container in this environment; deploy it first.")
        if not info.running:
            raise HopFailure(f"{service} is not running ({info.state}); start it or redeploy.")
        return info

    def endpoint(self, service: str, port: int) -> tuple[str, int]:
        info = self.require(service)
        if port not in info.ports:
            raise HopSkipped(
                f"{service} does not publish port {port} in this environment, so it cannot "
                "be reached from this host."
            )
        return info.ports[port]


Cleanup = Callable[[], None]


@dataclass
class SmokeContext:
    """What hops share: the project's values, its services, the run id, the clean-up list
    and the results of earlier hops."""

    environment: str
    values: Callable[[str], str | None]
    services: Services
    run_id: str
    rehearsal: bool = False
    docker_cmd: Sequence[str] = ("docker",)
    state: dict[str, Any] = field(default_factory=dict)
    cleanups: list[tuple[str, Cleanup]] = field(default_factory=list)
    results: dict[str, HopResult] = field(default_factory=dict)

    def value(self, key: str, default: str = "") -> str:
        return self.values(key) or default

    def secret(self, key: str) -> str:
        value = self.values(key)
        if not value:
            raise HopFailure(f"{key} is not set for {self.environment}; set it in its env file.")
        return value

    def on_cleanup(self, what: str, action: Cleanup) -> None:
        self.cleanups.append((what, action))

    def exec_in(
        self,
        service: str,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the service's container (``docker exec``); never raises on a
        non-zero exit, raises :class:`HopFailure` on a timeout."""
        info = self.services.require(service)
        cmd = [*self.docker_cmd, "exec", *(["-i"] if stdin is not None else []), info.container_id]
        try:
            return subprocess.run(
                [*cmd, *argv], input=stdin, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise HopFailure(
                f"{argv[0]} in {service} did not finish within {int(timeout)} s."
            ) from None


@dataclass(frozen=True)
class Hop:
    name: str
    services: tuple[str, ...]  # all must be real (not stand-ins) for the hop to be rehearsed
    run: Callable[[SmokeContext], str]  # returns a detail line; raises HopFailure/HopSkipped
    needs: tuple[str, ...] = ()  # hops that must have passed first


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


def run_smoke(project: Project, only: Sequence[str] = (), run_id: str | None = None) -> SmokeReport:
    """Smoke-test the deployed environment of ``project``."""
    from .hops import HOPS

    services = Services.of_project(project.compose.project_name)
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
