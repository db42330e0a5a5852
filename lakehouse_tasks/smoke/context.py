"""What the hops share: the services of the environment as the smoke check sees them, the
run's context (values, run id, clean-up list, earlier results) and the ``Hop`` record.

The hops (``smoke.hops``) and the runner (``smoke.runner``) both import this module and
nothing of each other's but the runner's ``HOPS``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.containers import SERVICE_LABEL
from .model import HopFailure, HopResult, HopSkipped

STANDIN_IMAGE_PREFIX = "lakehouse-rehearsal/busybox"


@dataclass
class ServiceInfo:
    """The running container of one service, as the smoke check sees it."""

    service: str
    container_id: str
    image: str
    running: bool
    state: str
    ports: dict[int, tuple[str, int]] = field(default_factory=dict)  # container port -> host
    address: str = ""  # on its bridge network; used for unpublished ports when asked

    @property
    def standin(self) -> bool:
        return self.image.startswith(STANDIN_IMAGE_PREFIX)


class Services:
    """service name -> :class:`ServiceInfo`, read with one ``docker ps`` + one ``inspect``."""

    def __init__(self, infos: dict[str, ServiceInfo], by_address: bool = False) -> None:
        self.infos = infos
        self.by_address = by_address  # reach unpublished ports at the container's address

    @classmethod
    def of_project(
        cls, project_name: str, docker_cmd: Sequence[str] = ("docker",), by_address: bool = False
    ) -> Services:
        from ..engine import containers

        rows = containers.project_containers(docker_cmd, project_name)
        inspected = containers.inspect_containers(docker_cmd, [r["ID"] for r in rows])
        infos: dict[str, ServiceInfo] = {}
        for data in inspected:
            labels = data.get("Config", {}).get("Labels") or {}
            service = labels.get(SERVICE_LABEL)
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
                address=next(
                    (
                        n.get("IPAddress")
                        for n in (data.get("NetworkSettings", {}).get("Networks") or {}).values()
                        if n.get("IPAddress")
                    ),
                    "",
                ),
            )
            # Prefer a running container when a service has several (scaled or re-created).
            if service not in infos or (info.running and not infos[service].running):
                infos[service] = info
        return cls(infos, by_address=by_address)

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
        if port not in info.ports and self.by_address and info.address:
            return info.address, port
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
        from ..engine import commands as engine_commands

        info = self.services.require(service)
        try:
            return engine_commands.exec_completed(
                info.container_id, argv, stdin=stdin, timeout=timeout, docker_cmd=self.docker_cmd
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
