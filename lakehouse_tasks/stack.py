"""The merged compose configuration as data: services, one-shots, layers, ports, limits.

Built once from ``docker compose config --format json`` (see :mod:`lakehouse_tasks.engine.compose`);
every task that needs to know the stack reads it from here instead of re-parsing YAML.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .parsing import parse_names
from .schema import parse_size

ONESHOT_LABEL = "io.lakehouse.oneshot"
LAYER_LABEL = "io.lakehouse.layer"
LAYER_NAMES = {
    1: "storage",
    2: "metadata",
    3: "processing",
    4: "query",
    5: "analytics",
    6: "application",
}


@dataclass(frozen=True)
class PublishedPort:
    host_ip: str
    published: int
    target: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        ip = f"{self.host_ip}:" if self.host_ip else "0.0.0.0:"
        return f"{ip}{self.published}->{self.target}/{self.protocol}"

    @property
    def all_interfaces(self) -> bool:
        return self.host_ip in ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class Resources:
    cpus: float = 0.0
    memory: int = 0  # bytes


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]
    interval: str = ""
    timeout: str = ""
    retries: int = 0
    start_period: str = ""
    disabled: bool = False


@dataclass(frozen=True)
class Service:
    """One service of the merged configuration."""

    name: str
    image: str
    oneshot: bool
    layer: int
    depends_on: Mapping[str, str]  # dependency -> condition
    ports: tuple[PublishedPort, ...]
    volumes: tuple[str, ...]  # named volumes only
    bind_mounts: tuple[str, ...]
    limits: Resources
    reservations: Resources
    healthcheck: Healthcheck | None
    restart: str
    logging: Mapping[str, Any]
    profiles: tuple[str, ...]
    labels: Mapping[str, str]
    replicas: int = 1
    build: bool = False

    @property
    def layer_name(self) -> str:
        return LAYER_NAMES.get(self.layer, str(self.layer))

    @property
    def long_running(self) -> bool:
        return not self.oneshot


def _cpus(value: Any) -> float:
    if value in (None, ""):
        return 0.0
    return float(value)


def _memory(value: Any) -> int:
    if value in (None, ""):
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    return parse_size(str(value))


def _resources(raw: Mapping[str, Any] | None) -> Resources:
    raw = raw or {}
    return Resources(cpus=_cpus(raw.get("cpus")), memory=_memory(raw.get("memory")))


def _ports(raw: list[Any] | None) -> tuple[PublishedPort, ...]:
    ports = []
    for p in raw or []:
        if not isinstance(p, Mapping) or not p.get("published"):
            continue
        ports.append(
            PublishedPort(
                host_ip=str(p.get("host_ip", "")),
                published=int(p["published"]),
                target=int(p.get("target", 0)),
                protocol=str(p.get("protocol", "tcp")),
            )
        )
    return tuple(ports)


def _healthcheck(raw: Mapping[str, Any] | None) -> Healthcheck | None:
    if not raw:
        return None
    test = raw.get("test") or []
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    return Healthcheck(
        test=tuple(str(t) for t in test),
        interval=str(raw.get("interval", "")),
        timeout=str(raw.get("timeout", "")),
        retries=int(raw.get("retries", 0) or 0),
        start_period=str(raw.get("start_period", "")),
        disabled=bool(raw.get("disable", False)) or (list(test)[:1] == ["NONE"]),
    )


@dataclass(frozen=True)
class Stack:
    """The merged compose configuration of one environment."""

    name: str
    services: Mapping[str, Service]
    volumes: Mapping[str, str]  # compose volume key -> engine volume name
    networks: tuple[str, ...]
    config_hash: str
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Stack:
        services: dict[str, Service] = {}
        for name, raw in (config.get("services") or {}).items():
            labels = dict(raw.get("labels") or {})
            deploy = raw.get("deploy") or {}
            resources = deploy.get("resources") or {}
            depends = {
                dep: str((spec or {}).get("condition", "service_started"))
                for dep, spec in (raw.get("depends_on") or {}).items()
            }
            volumes, binds = [], []
            for v in raw.get("volumes") or []:
                if v.get("type") == "volume" and v.get("source"):
                    volumes.append(str(v["source"]))
                elif v.get("type") == "bind":
                    binds.append(str(v.get("source", "")))
            oneshot = str(labels.get(ONESHOT_LABEL, "")).lower() == "true"
            services[name] = Service(
                name=name,
                image=str(raw.get("image", "")),
                oneshot=oneshot,
                layer=int(labels.get(LAYER_LABEL, 0) or 0),
                depends_on=depends,
                ports=_ports(raw.get("ports")),
                volumes=tuple(volumes),
                bind_mounts=tuple(binds),
                limits=_resources(resources.get("limits")),
                reservations=_resources(resources.get("reservations")),
                healthcheck=_healthcheck(raw.get("healthcheck")),
                restart=str(raw.get("restart", "no")),
                logging=dict(raw.get("logging") or {}),
                profiles=tuple(raw.get("profiles") or ()),
                labels=labels,
                replicas=int(
                    deploy.get("replicas", 1) if deploy.get("replicas") is not None else 1
                ),
                build=bool(raw.get("build")),
            )
        volume_names = {
            key: str((spec or {}).get("name", key))
            for key, spec in (config.get("volumes") or {}).items()
        }
        canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
        return cls(
            name=str(config.get("name", "")),
            services=services,
            volumes=volume_names,
            networks=tuple((config.get("networks") or {}).keys()),
            config_hash=hashlib.sha256(canonical.encode()).hexdigest(),
            raw=config,
        )

    # ---- views --------------------------------------------------------------------------
    @property
    def active(self) -> dict[str, Service]:
        """Services that ``up`` starts: replicas above zero."""
        return {n: s for n, s in self.services.items() if s.replicas > 0}

    @property
    def long_running(self) -> dict[str, Service]:
        return {n: s for n, s in self.active.items() if not s.oneshot}

    @property
    def oneshots(self) -> dict[str, Service]:
        return {n: s for n, s in self.active.items() if s.oneshot}

    def startup_layers(self) -> list[list[str]]:
        """Services grouped by dependency depth: each group only needs earlier groups."""
        depth: dict[str, int] = {}

        def visit(name: str, seen: frozenset[str] = frozenset()) -> int:
            if name in depth:
                return depth[name]
            if name in seen:
                raise ValueError(f"dependency cycle through {name}")
            deps = [d for d in self.services[name].depends_on if d in self.services]
            level = 1 + max((visit(d, seen | {name}) for d in deps), default=-1)
            depth[name] = level
            return level

        for name in self.services:
            visit(name)
        groups: dict[int, list[str]] = {}
        for name, level in depth.items():
            groups.setdefault(level, []).append(name)
        return [sorted(groups[k]) for k in sorted(groups)]

    def labelled_layers(self) -> dict[int, list[str]]:
        """Active services grouped by their ``io.lakehouse.layer`` label (the six layers)."""
        layers: dict[int, list[str]] = {}
        for name, svc in sorted(self.active.items()):
            layers.setdefault(svc.layer, []).append(name)
        return dict(sorted(layers.items()))

    def totals(self, *, only_active: bool = True) -> dict[str, Resources]:
        services = self.active if only_active else self.services
        return {
            "limits": Resources(
                cpus=round(sum(s.limits.cpus * max(s.replicas, 1) for s in services.values()), 3),
                memory=sum(s.limits.memory * max(s.replicas, 1) for s in services.values()),
            ),
            "reservations": Resources(
                cpus=round(
                    sum(s.reservations.cpus * max(s.replicas, 1) for s in services.values()), 3
                ),
                memory=sum(s.reservations.memory * max(s.replicas, 1) for s in services.values()),
            ),
        }

    def published_ports(self) -> list[tuple[str, PublishedPort]]:
        return [(n, p) for n, s in self.active.items() for p in s.ports]

    def images(self) -> dict[str, str]:
        return {n: s.image for n, s in self.active.items()}


# ---- choosing services -------------------------------------------------------------------
def parse_services(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``a,b`` (or repeated values) as a tuple of names (:func:`parsing.parse_names`)."""
    return parse_names(value)


def require_known(
    names: Iterable[str], known: Iterable[str], *, listed_as: str = "known services"
) -> None:
    """The one "unknown service" error: a ConfigError naming every name of ``names`` that is
    not in ``known``, and the known ones (under ``listed_as``)."""
    known_set = set(known)
    unknown = [n for n in names if n not in known_set]
    if unknown:
        raise ConfigError(
            f"Unknown service{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"{listed_as}: {', '.join(sorted(known_set))}."
        )


def with_dependencies(stack: Stack, names: Sequence[str]) -> list[str]:
    """The named services and everything they depend on (all active services when empty)."""
    if not names:
        return sorted(stack.active)
    require_known(names, stack.services)
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(d for d in stack.services[name].depends_on if d in stack.services)
    return sorted(seen)
