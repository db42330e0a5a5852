"""The merged compose configuration as a swarm stack file (docs/SCALING.md).

Keys swarm does not support are dropped, ``restart:`` becomes ``deploy.restart_policy``, every
service gets ``update_config``/``rollback_config`` (stateful services stop-first and pinned to
storage nodes, stateless ones start-first) and, in prod, credentials become swarm secrets
(``secrets.py``). Pure data in, data out: nothing here runs docker."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...stack import Service, Stack, require_known
from .policies import (
    STATEFUL_LABEL,
    STORAGE_CONSTRAINT,
    SwarmOptions,
    is_stateful,
    restart_policy,
    rollback_config,
    update_config,
)
from .secrets import SECRET_FILE_UID, SecretRef, file_secret_refs, secret_refs

if TYPE_CHECKING:
    from ...project import Project


#: Compose file format the generated stack files declare (``docker stack deploy`` reads 3.x).
STACK_FILE_VERSION = "3.9"


#: Service keys ``docker stack deploy`` (compose file 3.9) accepts; everything else is dropped
#: and named in :attr:`StackFile.notes`.
SUPPORTED_SERVICE_KEYS = frozenset(
    {
        "cap_add",
        "cap_drop",
        "command",
        "configs",
        "deploy",
        "dns",
        "dns_search",
        "entrypoint",
        "environment",
        "extra_hosts",
        "healthcheck",
        "hostname",
        "image",
        "init",
        "labels",
        "logging",
        "networks",
        "ports",
        "read_only",
        "secrets",
        "stop_grace_period",
        "stop_signal",
        "sysctls",
        "tmpfs",
        "ulimits",
        "user",
        "volumes",
        "working_dir",
    }
)

#: Dropped silently: handled by the translation itself (restart, depends_on) or meaningless
#: in a stack file (build, pull_policy, profiles, container_name).
TRANSLATED_KEYS = frozenset(
    {"restart", "depends_on", "build", "pull_policy", "profiles", "container_name"}
)

HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period", "disable")


@dataclass(frozen=True)
class StackFile:
    """A generated stack file and what the translation did."""

    stack: str
    document: Mapping[str, Any]
    secrets: tuple[SecretRef, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def services(self) -> list[str]:
        return sorted(self.document.get("services") or {})

    def text(self) -> str:
        """The file's text (JSON is YAML; ``docker stack deploy`` reads it as a compose file)."""
        return json.dumps(self.document, indent=2, sort_keys=True) + "\n"

    def write(self, directory: Path, name: str = "stack.yaml") -> Path:
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.text())
        return path


def _resources(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("cpus", "memory"):
        value = (raw or {}).get(key)
        if value not in (None, "", 0, "0"):
            out[key] = str(value)
    return out


def _port(raw: Any, name: str, notes: list[str]) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping) or not raw.get("published"):
        return None
    host_ip = str(raw.get("host_ip", "") or "")
    if host_ip not in ("", "0.0.0.0", "::"):
        notes.append(
            f"{name}: port {raw['published']} is published on every interface (swarm cannot "
            f"bind to {host_ip}); firewall it"
        )
    return {
        "target": int(raw.get("target", 0)),
        "published": int(str(raw["published"]).split("-")[0]),
        "protocol": str(raw.get("protocol", "tcp")),
        "mode": "host" if raw.get("mode") == "host" else "ingress",
    }


def _volume(raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        return raw
    out: dict[str, Any] = {
        k: raw[k] for k in ("type", "source", "target", "read_only") if k in raw and raw[k] != ""
    }
    kind = raw.get("type")
    if kind == "bind" and (raw.get("bind") or {}).get("propagation"):
        out["bind"] = {"propagation": raw["bind"]["propagation"]}
    if kind == "volume" and (raw.get("volume") or {}).get("nocopy"):
        out["volume"] = {"nocopy": True}
    if kind == "tmpfs" and (raw.get("tmpfs") or {}).get("size"):
        out["tmpfs"] = {"size": raw["tmpfs"]["size"]}
    return out


def translate_service(
    name: str,
    raw: Mapping[str, Any],
    service: Service,
    *,
    environment: str,
    stack_name: str,
    options: SwarmOptions,
    is_secret: Callable[[str], bool] = lambda _name: False,
    file_secrets: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[SecretRef], list[str]]:
    """One service of the merged config as a stack-file service, its secrets and notes."""
    notes: list[str] = []
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in TRANSLATED_KEYS or key == "secrets":
            continue
        if key not in SUPPORTED_SERVICE_KEYS:
            notes.append(f"{name}: {key} dropped (not supported by docker stack deploy)")
            continue
        if value is None or value == {} or value == []:
            continue
        out[key] = value
    if "healthcheck" in out:
        out["healthcheck"] = {
            k: raw["healthcheck"][k] for k in HEALTHCHECK_KEYS if k in raw["healthcheck"]
        }
    if "ports" in out:
        ports = [_port(p, name, notes) for p in raw.get("ports") or []]
        out["ports"] = [p for p in ports if p]
    if "volumes" in out:
        out["volumes"] = [_volume(v) for v in raw.get("volumes") or []]
    labels = {**dict(raw.get("labels") or {}), "io.lakehouse.environment": environment}
    out["labels"] = labels

    env = dict(raw.get("environment") or {})
    refs: list[SecretRef] = []
    # Compose file secrets (docker-compose.secrets-files.yaml): the same files become swarm
    # secrets with the same targets. Swarm mounts them in the task's own tmpfs, so 0444 lets
    # whatever user the image runs as read them (group_add does not exist in a stack file).
    file_refs = file_secret_refs(stack_name, name, raw.get("secrets") or [], file_secrets or {})
    refs.extend(ref for ref, _ in file_refs)
    service_secrets: list[dict[str, Any]] = [
        {"source": ref.name, "target": target, "uid": "0", "gid": "0", "mode": 0o444}
        for ref, target in file_refs
    ]
    if options.secrets:
        env_refs = secret_refs(stack_name, name, env, is_secret)
        refs.extend(env_refs)
        for ref in env_refs:
            env.pop(ref.variable, None)
            target = f"/run/secrets/{ref.variable.lower()}"
            env[ref.file_variable] = (
                f"cat {target}" if ref.file_variable.endswith("_CMD") else target
            )
        service_secrets += [
            {
                "source": ref.name,
                "target": ref.variable.lower(),
                "uid": SECRET_FILE_UID.get(name, "0"),
                "gid": SECRET_FILE_UID.get(name, "0"),
                "mode": 0o400,
            }
            for ref in env_refs
        ]
    if service_secrets:
        out["secrets"] = service_secrets
    if env:
        out["environment"] = env

    source_deploy = raw.get("deploy") or {}
    resources = source_deploy.get("resources") or {}
    deploy_section: dict[str, Any] = {
        "mode": "replicated",
        "replicas": service.replicas,
        "restart_policy": restart_policy(service.restart, oneshot=service.oneshot),
        "update_config": update_config(service, options),
        "rollback_config": rollback_config(service, options),
        "labels": {k: v for k, v in labels.items() if k.startswith("io.lakehouse.")}
        | {STATEFUL_LABEL: "true" if is_stateful(service) else "false"},
    }
    limits = _resources(resources.get("limits"))
    reservations = _resources(resources.get("reservations")) if options.reservations else {}
    if limits or reservations:
        deploy_section["resources"] = {}
        if limits:
            deploy_section["resources"]["limits"] = limits
        if reservations:
            deploy_section["resources"]["reservations"] = reservations
    if source_deploy.get("endpoint_mode") in ("vip", "dnsrr"):
        # dnsrr: the service name resolves to every task's address (no VIP, no IPVS).
        deploy_section["endpoint_mode"] = source_deploy["endpoint_mode"]
    constraints = list((source_deploy.get("placement") or {}).get("constraints") or [])
    if is_stateful(service) and STORAGE_CONSTRAINT not in constraints:
        constraints.append(STORAGE_CONSTRAINT)
    if constraints:
        deploy_section["placement"] = {"constraints": constraints}
    out["deploy"] = deploy_section
    return out, refs, notes


def build_stack_file(
    config: Mapping[str, Any],
    *,
    environment: str,
    stack_name: str,
    options: SwarmOptions,
    services: Iterable[str] | None = None,
    is_secret: Callable[[str], bool] = lambda _name: False,
) -> StackFile:
    """The stack file of ``services`` (default: every active service) of a merged config.

    Networks become overlay networks named by the stack (``<stack>_<key>``); volumes keep the
    names compose gives them (``<project>_<key>``), so on one host the same data is found
    whichever target deployed it. Top-level ``x-*`` and ``name`` keys are dropped.
    """
    stack = Stack.from_config(config)
    wanted = sorted(stack.active) if services is None else sorted(services)
    require_known(wanted, stack.services)
    raw_services = config.get("services") or {}
    out_services: dict[str, Any] = {}
    refs: list[SecretRef] = []
    notes: list[str] = []
    for name in wanted:
        translated, found, said = translate_service(
            name,
            raw_services[name],
            stack.services[name],
            environment=environment,
            stack_name=stack_name,
            options=options,
            is_secret=is_secret,
            file_secrets=config.get("secrets") or {},
        )
        out_services[name] = translated
        refs.extend(found)
        notes.extend(said)

    used_networks = {net for svc in out_services.values() for net in (svc.get("networks") or {})}
    networks: dict[str, Any] = {}
    for key, spec in (config.get("networks") or {}).items():
        if key not in used_networks:
            continue
        spec = dict(spec or {})
        if spec.get("external"):
            networks[key] = {"external": True, "name": spec.get("name", key)}
        else:
            networks[key] = {"driver": "overlay", "attachable": True}
    used_volumes = {
        v.get("source")
        for svc in out_services.values()
        for v in svc.get("volumes") or []
        if isinstance(v, Mapping) and v.get("type") == "volume"
    }
    volumes: dict[str, Any] = {}
    for key, spec in (config.get("volumes") or {}).items():
        if key not in used_volumes:
            continue
        spec = dict(spec or {})
        entry: dict[str, Any] = {"name": spec.get("name", f"{stack_name}_{key}")}
        for extra in ("driver", "driver_opts", "external", "labels"):
            if spec.get(extra):
                entry[extra] = spec[extra]
        volumes[key] = entry

    document: dict[str, Any] = {"version": STACK_FILE_VERSION, "services": out_services}
    if networks:
        document["networks"] = networks
    if volumes:
        document["volumes"] = volumes
    if refs:
        document["secrets"] = {ref.name: {"external": True, "name": ref.name} for ref in refs}
    return StackFile(stack=stack_name, document=document, secrets=tuple(refs), notes=tuple(notes))


def project_stack_file(
    project: Project, *, options: SwarmOptions, services: Iterable[str] | None = None
) -> StackFile:
    return build_stack_file(
        project.compose.config(),
        environment=project.env.name,
        stack_name=stack_name(project),
        options=options,
        services=services,
        is_secret=project.env.is_secret,
    )


def stack_name(project: Project) -> str:
    """The stack is named like the compose project (``COMPOSE_PROJECT_NAME``)."""
    return project.compose.project_name
