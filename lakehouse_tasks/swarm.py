"""The Docker Swarm backend: the same stack, deployed with ``docker stack deploy``.

The merged compose configuration (``docker compose config``) is translated into a stack file
(:func:`build_stack_file`): keys swarm does not support are dropped, ``restart:`` becomes
``deploy.restart_policy``, every service gets ``update_config``/``rollback_config`` (stateful
services stop-first and pinned to storage nodes, stateless ones start-first) and, in prod,
credentials become swarm secrets read through ``*_FILE`` variables where the image supports
them.

Swarm has no ``depends_on``. :func:`deploy` therefore deploys the stack *step by step*: step N
is a stack file holding the services of the first N dependency depths (``Stack.startup_layers``)
and is deployed only when every service of the earlier steps is healthy (one-shots completed),
so a service never starts before what it depends on (docs/SCALING.md says why this was chosen
over deploying everything at once). The last step is the whole file with ``--prune``.

Health (:func:`take_snapshot`) maps swarm tasks onto the same
:class:`~lakehouse_tasks.health.ServiceHealth` rows as compose: one row per service replica
(slot), from the newest task of that slot. A swarm task with a healthcheck only reaches
``running`` once its container is healthy, so ``running`` reads as ``healthy`` there.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import client
from .engine import containers as engine_containers
from .engine import swarm as engine_swarm
from .engine import volumes as engine_volumes
from .errors import ConfigError, ExitCode, LakehouseError
from .health import HealthProbe, HealthSnapshot, ServiceHealth, access_urls
from .outcomes import (
    CRASH_LOOP_RESTARTS,
    Reporter,
    ServiceFailure,
    ServiceProgress,
    TeardownResult,
    WaitOutcome,
)
from .stack import ONESHOT_LABEL, Service, Stack, parse_services, with_dependencies

if TYPE_CHECKING:
    from .project import Project


#: Compose file format the generated stack files declare (``docker stack deploy`` reads 3.x).
STACK_FILE_VERSION = "3.9"

#: The node label that marks nodes allowed to hold the stateful services' local volumes.
STORAGE_NODE_LABEL = "lakehouse.storage"
STORAGE_CONSTRAINT = f"node.labels.{STORAGE_NODE_LABEL} == true"

#: Services owning data in local volumes: stop-first updates (two writers on one data directory
#: would corrupt it) and placement on storage nodes. A service can join with the label
#: ``io.lakehouse.stateful: "true"``.
STATEFUL_SERVICES = frozenset(
    {"minio", "metastore-db", "superset-db", "airflow-db", "hive-metastore"}
)
STATEFUL_LABEL = "io.lakehouse.stateful"

#: update_config.monitor: how long swarm watches a new task before calling the update good.
MONITOR = "30s"
REHEARSAL_MONITOR = "10s"

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

#: How each image family reads a credential from a file (docker secret) instead of from the
#: environment: service -> suffix. ``_FILE`` holds a path (official postgres entrypoint),
#: ``_CMD`` a command whose output is the value (Airflow's sensitive options), ``__FILE`` a path
#: (Grafana). Services not listed keep their credentials in the environment (docs/SCALING.md).
SECRET_FILE_SUFFIX: Mapping[str, str] = {
    "metastore-db": "_FILE",
    "superset-db": "_FILE",
    "airflow-db": "_FILE",
    "airflow-webserver": "_CMD",
    "airflow-scheduler": "_CMD",
    "airflow-init": "_CMD",
    "grafana": "__FILE",
}
#: Variables of those services that can be delivered as files (the images document these).
SECRET_FILE_VARIABLES: Mapping[str, frozenset[str]] = {
    "_FILE": frozenset({"POSTGRES_PASSWORD", "POSTGRES_USER"}),
    "_CMD": frozenset(
        {
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__WEBSERVER__SECRET_KEY",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        }
    ),
    "__FILE": frozenset({"GF_SECURITY_ADMIN_PASSWORD", "GF_SECURITY_ADMIN_USER"}),
}
#: Owner of the secret file inside the container (the image's runtime user reads it).
SECRET_FILE_UID: Mapping[str, str] = {
    "metastore-db": "999",
    "superset-db": "999",
    "airflow-db": "999",
    "airflow-webserver": "50000",
    "airflow-scheduler": "50000",
    "airflow-init": "50000",
    "grafana": "472",
}

POLL_SECONDS = 1.0
#: Task states before ``running`` (the container is being prepared or its healthcheck has not
#: passed yet).
PENDING_TASK_STATES = frozenset(
    {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
)
FAILED_TASK_STATES = frozenset({"failed", "rejected", "orphaned"})
ROLLBACK_STATES = frozenset({"rollback_started", "rollback_completed", "rollback_paused"})


# ---- translation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SwarmOptions:
    """How the stack file is generated and deployed."""

    monitor: str = MONITOR
    #: Label the node we talk to as a storage node (single-node swarms, rehearsal).
    label_node: bool = False
    #: Deliver credentials as swarm secrets (prod).
    secrets: bool = False
    #: Keep resource reservations; a rehearsal on a 2-core machine cannot hold the real ones
    #: (swarm refuses to schedule a task whose reservation no node can satisfy).
    reservations: bool = True


def options_for(project: Project, *, label_node: bool = False) -> SwarmOptions:
    """The options of an environment: secrets in prod; a shorter monitor window, a labelled
    node and no reservations in rehearsal."""
    return SwarmOptions(
        monitor=REHEARSAL_MONITOR if project.rehearsal else MONITOR,
        label_node=label_node or project.rehearsal,
        secrets=project.env.name == "prod",
        reservations=not project.rehearsal,
    )


@dataclass(frozen=True)
class SecretRef:
    """One credential delivered as a swarm secret (the value is never printed)."""

    service: str
    variable: str  # the container's variable, e.g. POSTGRES_PASSWORD
    file_variable: str  # what the container reads instead, e.g. POSTGRES_PASSWORD_FILE
    name: str  # the swarm secret's name
    value: str = field(repr=False, default="")


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


def is_stateful(service: Service) -> bool:
    return (
        service.name in STATEFUL_SERVICES
        or str(service.labels.get(STATEFUL_LABEL, "")).lower() == "true"
    )


def restart_policy(restart: str, *, oneshot: bool) -> dict[str, Any]:
    """compose ``restart:`` as swarm's ``deploy.restart_policy``.

    ``no`` -> none, ``always``/``unless-stopped`` -> any, ``on-failure[:N]`` -> on-failure
    (max_attempts N). A one-shot is never restarted once it completed: condition none
    whatever the environment says (it would otherwise run again and again).
    """
    if oneshot:
        return {"condition": "none"}
    name, _sep, attempts = (restart or "no").partition(":")
    name = name.strip().lower()
    if name in ("no", "", "none"):
        return {"condition": "none"}
    if name in ("always", "unless-stopped", "any"):
        return {"condition": "any", "delay": "5s"}
    if name == "on-failure":
        policy: dict[str, Any] = {"condition": "on-failure", "delay": "5s"}
        if attempts.strip().isdigit():
            policy["max_attempts"] = int(attempts)
        return policy
    raise ConfigError(
        f"Restart policy {restart!r} has no swarm equivalent; use no, always, unless-stopped "
        "or on-failure (RESTART_POLICY)."
    )


def update_order(service: Service) -> str:
    """start-first for stateless services (no gap), stop-first for stateful ones and
    one-shots (two containers must not share one data directory)."""
    return "stop-first" if is_stateful(service) or service.oneshot else "start-first"


def update_config(service: Service, options: SwarmOptions) -> dict[str, Any]:
    return {
        "parallelism": 1,
        "delay": "0s",
        "order": update_order(service),
        "failure_action": "rollback",
        "monitor": options.monitor,
        "max_failure_ratio": 0,
    }


def rollback_config(service: Service, options: SwarmOptions) -> dict[str, Any]:
    return {
        "parallelism": 1,
        "delay": "0s",
        "order": update_order(service),
        "failure_action": "pause",
        "monitor": options.monitor,
        "max_failure_ratio": 0,
    }


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


def _unescape(value: str) -> str:
    """A value as the container sees it (compose config writes ``$`` as ``$$``)."""
    return value.replace("$$", "$")


def secret_name(stack: str, service: str, variable: str, value: str) -> str:
    """Swarm secrets are immutable: the name carries a hash of the value, so a rotated
    credential is a new secret and the service update rolls it out."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    base = f"{stack}_{service}_{variable.lower()}"
    return f"{base[: 63 - 11]}_{digest}"


def _secret_refs(
    stack_name: str, name: str, environment: dict[str, Any], is_secret: Callable[[str], bool]
) -> list[SecretRef]:
    suffix = SECRET_FILE_SUFFIX.get(name)
    if suffix is None:
        return []
    refs = []
    for variable in sorted(environment):
        value = environment[variable]
        if value in (None, "") or variable not in SECRET_FILE_VARIABLES[suffix]:
            continue
        if not (is_secret(variable) or variable.endswith("_USER")):
            continue
        plain = _unescape(str(value))
        refs.append(
            SecretRef(
                service=name,
                variable=variable,
                file_variable=variable + suffix,
                name=secret_name(stack_name, name, variable, plain),
                value=plain,
            )
        )
    return refs


def _file_secret_refs(
    stack_name: str, service: str, wanted: Iterable[Any], declared: Mapping[str, Any]
) -> list[tuple[SecretRef, str]]:
    """Swarm secrets for a service's compose file secrets, with their targets (file names
    under /run/secrets). The value is read from the file the tool wrote."""
    found = []
    for entry in wanted:
        source = entry if isinstance(entry, str) else str(entry.get("source", ""))
        target = "" if isinstance(entry, str) else str(entry.get("target", ""))
        target = Path(target).name if target else source
        spec = declared.get(source) or {}
        path = spec.get("file")
        if not path:
            raise ConfigError(
                f"{service}: secret {source} has no file; declare it under the top-level "
                "`secrets:` with `file:`."
            )
        try:
            value = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(
                f"{service}: cannot read the secret file {path} ({exc.strerror}); "
                "run the command again so the tool writes it."
            ) from None
        ref = SecretRef(
            service=service,
            variable=source,
            file_variable="",
            name=secret_name(stack_name, service, source, value),
            value=value,
        )
        found.append((ref, target))
    return found


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
    file_refs = _file_secret_refs(stack_name, name, raw.get("secrets") or [], file_secrets or {})
    refs.extend(ref for ref, _ in file_refs)
    service_secrets: list[dict[str, Any]] = [
        {"source": ref.name, "target": target, "uid": "0", "gid": "0", "mode": 0o444}
        for ref, target in file_refs
    ]
    if options.secrets:
        env_refs = _secret_refs(stack_name, name, env, is_secret)
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
    unknown = [n for n in wanted if n not in stack.services]
    if unknown:
        raise ConfigError(
            f"Unknown service{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known services: {', '.join(sorted(stack.services))}."
        )
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


# ---- reading the swarm ----------------------------------------------------------------------
def _short_name(full: str, stack: str) -> str:
    prefix = f"{stack}_"
    return full[len(prefix) :] if full.startswith(prefix) else full


def _task_time(task: Mapping[str, Any]) -> str:
    return str(task.get("CreatedAt") or (task.get("Meta") or {}).get("CreatedAt") or "")


@dataclass(frozen=True)
class TaskView:
    """One swarm task, as much as the tool needs."""

    id: str
    service: str
    slot: int
    state: str
    desired: str
    error: str
    exit_code: int | None
    container_id: str
    image: str
    timestamp: str
    created: str
    current_spec: bool  # runs the service's current container spec

    @classmethod
    def from_inspect(
        cls, task: Mapping[str, Any], service_name: str, current: Mapping[str, Any] | None
    ) -> TaskView:
        status = task.get("Status") or {}
        container = status.get("ContainerStatus") or {}
        spec = (task.get("Spec") or {}).get("ContainerSpec") or {}
        exit_code = container.get("ExitCode")
        return cls(
            id=str(task.get("ID", "")),
            service=service_name,
            slot=int(task.get("Slot") or 0),
            state=str(status.get("State", "")),
            desired=str(task.get("DesiredState", "")),
            error=str(status.get("Err", "") or ""),
            exit_code=int(exit_code) if exit_code is not None else None,
            container_id=str(container.get("ContainerID", "") or ""),
            image=str(spec.get("Image", "")),
            timestamp=str(status.get("Timestamp", "")),
            created=_task_time(task),
            current_spec=current is not None and _same_spec(spec, current),
        )


#: The container-spec fields compared to tell whether a task runs the service's current spec.
#: The engine fills other fields differently in the service and the task copy (DNSConfig,
#: StopGracePeriod, Privileges), so a whole-spec comparison never matches.
SPEC_FIELDS = ("Image", "Env", "Command", "Args", "Labels", "Healthcheck", "Mounts", "User", "Dir")


def _spec_key(spec: Mapping[str, Any]) -> str:
    picked = {k: spec.get(k) for k in SPEC_FIELDS if spec.get(k)}
    if "Env" in picked:
        picked["Env"] = sorted(picked["Env"] or [])
    return json.dumps(picked, sort_keys=True)


def _same_spec(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return _spec_key(a) == _spec_key(b)


@dataclass(frozen=True)
class ServiceView:
    """One swarm service of the stack: its spec summary, update status and tasks."""

    name: str
    full_name: str
    id: str
    replicas: int
    oneshot: bool
    has_healthcheck: bool
    restart_condition: str
    update_state: str
    update_message: str
    update_started: str
    cpu_limit: float
    memory_limit: int
    mounts: tuple[str, ...]
    tasks: tuple[TaskView, ...]

    @classmethod
    def from_inspect(
        cls, raw: Mapping[str, Any], stack: str, tasks: Sequence[Mapping[str, Any]]
    ) -> ServiceView:
        spec = raw.get("Spec") or {}
        template = spec.get("TaskTemplate") or {}
        container = template.get("ContainerSpec") or {}
        labels = spec.get("Labels") or {}
        update = raw.get("UpdateStatus") or {}
        limits = (template.get("Resources") or {}).get("Limits") or {}
        health = container.get("Healthcheck") or {}
        full = str(spec.get("Name", ""))
        name = _short_name(full, stack)
        own = [t for t in tasks if t.get("ServiceID") == raw.get("ID")]
        return cls(
            name=name,
            full_name=full,
            id=str(raw.get("ID", "")),
            replicas=int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)),
            oneshot=str(labels.get(ONESHOT_LABEL, "")).lower() == "true",
            has_healthcheck=bool(health.get("Test")) and health.get("Test") != ["NONE"],
            restart_condition=str((template.get("RestartPolicy") or {}).get("Condition", "any")),
            update_state=str(update.get("State", "")),
            update_message=str(update.get("Message", "")),
            update_started=str(update.get("StartedAt", "")),
            cpu_limit=int(limits.get("NanoCPUs") or 0) / 1e9,
            memory_limit=int(limits.get("MemoryBytes") or 0),
            mounts=tuple(
                f"{m.get('Source', '')}:{m.get('Target', '')}"
                for m in container.get("Mounts") or []
            ),
            tasks=tuple(
                sorted(
                    (TaskView.from_inspect(t, name, container) for t in own),
                    key=lambda t: (t.slot, t.created, t.id),
                )
            ),
        )

    def slot_tasks(self, slot: int) -> list[TaskView]:
        return [t for t in self.tasks if t.slot == slot]

    def current_task(self, slot: int) -> TaskView | None:
        """The task that speaks for a slot: the newest one meant to run, else the newest."""
        tasks = self.slot_tasks(slot)
        live = [t for t in tasks if t.desired in ("running", "ready", "accepted")]
        pick = live or tasks
        return pick[-1] if pick else None

    @property
    def slots(self) -> list[int]:
        found = sorted({t.slot for t in self.tasks if t.slot})
        return sorted(set(found) | set(range(1, self.replicas + 1)))

    @property
    def running_current(self) -> int:
        """Tasks running the current spec (running means healthy when there is a healthcheck)."""
        return sum(1 for t in self.tasks if t.current_spec and t.state == "running")

    @property
    def failed_current(self) -> list[TaskView]:
        return [t for t in self.tasks if t.current_spec and t.state in FAILED_TASK_STATES]


def read_stack(docker_cmd: Sequence[str], stack: str) -> dict[str, ServiceView]:
    """Every service of the stack with its tasks: four docker calls whatever the size."""
    services = engine_swarm.stack_services(docker_cmd, stack)
    tasks = engine_swarm.service_tasks(docker_cmd, [str(s.get("ID")) for s in services])
    views = (ServiceView.from_inspect(s, stack, tasks) for s in services)
    return {v.name: v for v in views}


# ---- health ---------------------------------------------------------------------------------
def _row_state(task: TaskView | None, view: ServiceView) -> tuple[str, str, int | None]:
    """(state, health, exit code) of a slot in compose's words (see health.derive_status)."""
    if task is None:
        return "missing", "none", None
    if task.state == "running":
        return "running", "healthy" if view.has_healthcheck else "none", None
    if task.state in PENDING_TASK_STATES:
        return "created", "starting" if view.has_healthcheck else "none", None
    if task.state == "complete":
        return "exited", "none", 0
    if task.state in FAILED_TASK_STATES:
        return "exited", "none", task.exit_code if task.exit_code not in (None, 0) else 1
    # shutdown / remove: the slot is being replaced or the service scaled down
    return "exited", "none", task.exit_code


def health_rows(
    views: Mapping[str, ServiceView],
    stack: Stack,
    *,
    wanted: Sequence[str] = (),
    urls: Mapping[str, str] | None = None,
    now: _dt.datetime | None = None,
) -> list[ServiceHealth]:
    """One :class:`ServiceHealth` per replica slot (``name``, ``name-2``, ...), plus a
    ``missing`` row for each active service swarm does not know."""
    from .health import parse_engine_time

    urls = urls or {}
    now = now or _dt.datetime.now(_dt.UTC)
    names = list(wanted) or sorted(stack.active)
    rows: list[ServiceHealth] = []
    for name in names:
        svc = stack.services.get(name)
        view = views.get(name)
        if view is None:
            rows.append(
                ServiceHealth(
                    service=name,
                    image=svc.image if svc else "",
                    oneshot=bool(svc and svc.oneshot),
                    url=urls.get(name, ""),
                    cpu_limit=svc.limits.cpus if svc else 0.0,
                    memory_limit=svc.limits.memory if svc else 0,
                    restart_policy=svc.restart if svc else "",
                    in_config=svc is not None,
                )
            )
            continue
        for slot in view.slots:
            task = view.current_task(slot)
            state, health, exit_code = _row_state(task, view)
            history = view.slot_tasks(slot)
            failures = [t for t in history if t.state in FAILED_TASK_STATES]
            started = parse_engine_time(task.timestamp) if task and state == "running" else None
            rows.append(
                ServiceHealth(
                    service=name if slot <= 1 else f"{name}-{slot}",
                    container=f"{view.full_name}.{slot}.{task.id}" if task else "",
                    container_id=(task.container_id or task.id) if task else "",
                    state=state,
                    health=health,
                    exit_code=exit_code,
                    restart_count=len(failures),
                    started_at=task.timestamp if task and started else "",
                    uptime_s=(now - started).total_seconds() if started else None,
                    url=urls.get(name, ""),
                    image=task.image if task else "",
                    oneshot=view.oneshot,
                    probes=tuple(
                        HealthProbe(exit_code=t.exit_code or 1, output=t.error, end=t.timestamp)
                        for t in failures[-3:]
                    ),
                    cpu_limit=round(view.cpu_limit, 3),
                    memory_limit=view.memory_limit,
                    volumes=view.mounts,
                    restart_policy=view.restart_condition,
                    in_config=svc is not None,
                )
            )
    return rows


def take_snapshot(
    project: Project, *, resources: bool = False, services: Sequence[str] | None = None
) -> HealthSnapshot:
    """The stack's health as the same :class:`HealthSnapshot` compose health returns.

    Four docker calls whatever the number of services (service ls, service inspect,
    service ps, task inspect). CPU and memory usage are not sampled on swarm (the tasks run
    on many nodes): ``resources`` is accepted for signature compatibility and ignored.
    """
    stack = project.stack
    wanted = list(parse_services(services))
    unknown = [n for n in wanted if n not in stack.services]
    if unknown:
        raise ConfigError(
            f"Unknown service{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"known services: {', '.join(sorted(stack.services))}."
        )
    name = stack_name(project)
    views = read_stack(project.compose.docker_cmd, name)
    now = _dt.datetime.now(_dt.UTC)
    rows = health_rows(views, stack, wanted=wanted, urls=access_urls(project), now=now)

    def order(row: ServiceHealth) -> tuple[int, str]:
        base = row.service if row.service in stack.services else row.service.rsplit("-", 1)[0]
        svc = stack.services.get(base)
        return (svc.layer if svc else 99, row.service)

    return HealthSnapshot(
        environment=project.env.name,
        project=name,
        rows=tuple(sorted(rows, key=order)),
        time=now,
        resources=False,
    )


# ---- deploy ---------------------------------------------------------------------------------
def require_swarm_manager(docker_cmd: Sequence[str]) -> None:
    state, manager = engine_swarm.swarm_state(docker_cmd)
    if state != "active" or not manager:
        raise LakehouseError(
            "This Docker engine is not a swarm manager (swarm state "
            f"{state!r}); run `docker swarm init` here, or point DOCKER_HOST at a manager.",
            ExitCode.ENGINE_UNREACHABLE,
        )


def ensure_storage_node(docker_cmd: Sequence[str], *, label_node: bool) -> str:
    """Make sure some node may hold the stateful services; label this one when asked."""
    nodes = engine_swarm.swarm_nodes(docker_cmd)
    labelled = [
        n
        for n in nodes
        if str(((n.get("Spec") or {}).get("Labels") or {}).get(STORAGE_NODE_LABEL)) == "true"
    ]
    if labelled:
        return f"storage nodes: {', '.join(str((n.get('Description') or {}).get('Hostname', n.get('ID'))) for n in labelled)}"
    if not label_node:
        raise LakehouseError(
            f"No swarm node carries the label {STORAGE_NODE_LABEL}=true, so the stateful "
            "services (databases, MinIO, Hive) cannot be placed; run `docker node update "
            f"--label-add {STORAGE_NODE_LABEL}=true NODE` on the node that holds their volumes, "
            "or pass --label-node to label this one.",
            ExitCode.DEPLOY_FAILED,
        )
    engine_swarm.label_node(docker_cmd, f"{STORAGE_NODE_LABEL}=true")
    return f"labelled this node {STORAGE_NODE_LABEL}=true"


def ensure_secrets(docker_cmd: Sequence[str], stack: str, refs: Sequence[SecretRef]) -> list[str]:
    """Create the secrets the stack file references that do not exist yet."""
    existing = set(engine_swarm.stack_secrets(docker_cmd, stack))
    created = []
    for ref in refs:
        if ref.name in existing:
            continue
        engine_swarm.create_secret(docker_cmd, stack, ref.name, ref.value)
        existing.add(ref.name)
        created.append(ref.name)
    return created


def missing_images(docker_cmd: Sequence[str], images: Iterable[str]) -> list[str]:
    """Images not on this node (``--resolve-image never``: nothing is pulled)."""
    present = client.Engine().image_ids(images) if docker_cmd else {}
    return sorted(ref for ref, ident in present.items() if ident is None)


@dataclass
class _Watch:
    """What the wait loop remembers between polls."""

    before: dict[str, tuple[str, str]]  # service -> (update state, started) before the deploy
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> last state seen
    #: service -> swarm's message, for each update swarm rolled back (the lifecycle emits the
    #: ROLLBACK events: a backend never calls hooks).
    rolled_back: dict[str, str] = field(default_factory=dict)


def judge_service(view: ServiceView | None, watch: _Watch) -> tuple[str, bool, str]:
    """(status word, done, failure) of one service after a deploy step."""
    if view is None:
        return "waiting", False, ""
    before = watch.before.get(view.name)
    fresh_update = (view.update_state, view.update_started) != before
    if view.update_state in ROLLBACK_STATES and fresh_update:
        message = view.update_message or "the new tasks did not become healthy"
        if view.update_state == "rollback_completed":
            return "rolled back", True, f"update failed and swarm rolled it back: {message}"
        return "rolling back", False, ""
    if view.update_state == "paused" and fresh_update:
        return "update paused", True, f"update paused by swarm: {view.update_message}"
    if view.oneshot:
        task = view.current_task(1)
        if task is None:
            return "waiting", False, ""
        if task.state == "complete":
            return "exited (0)", True, ""
        if task.state in FAILED_TASK_STATES:
            return "exited", True, f"one-shot failed: {task.error or f'exit {task.exit_code}'}"
        return "running" if task.state == "running" else "starting", False, ""
    failed = view.failed_current
    if failed and view.restart_condition == "none" and view.update_state != "updating":
        last = failed[-1]
        return "exited", True, f"task failed and is not restarted: {last.error or 'exited'}"
    if len(failed) >= CRASH_LOOP_RESTARTS and view.update_state != "updating":
        return "restarting", True, f"crash-looping ({len(failed)} failed tasks): {failed[-1].error}"
    if view.update_state in ("updating", "rollback_started"):
        return "updating", False, ""
    running = view.running_current
    if running >= view.replicas:
        return ("healthy" if view.has_healthcheck else "running"), True, ""
    return f"starting ({running}/{view.replicas})", False, ""


def _report_tasks(
    views: Mapping[str, ServiceView],
    watch: _Watch,
    names: Iterable[str],
    say: Callable[[str], None],
) -> None:
    """One line per task that appeared or changed state (rolling updates, replacements)."""
    for name in names:
        view = views.get(name)
        if view is None:
            continue
        for task in view.tasks:
            old = watch.tasks.get(task.id)
            if old == task.state:
                continue
            watch.tasks[task.id] = task.state
            if (
                old is None
                and task.state in ("shutdown", "complete", "failed")
                and not watch.before.get(name)
            ):
                continue
            what = "new task" if old is None else "task"
            meaning = {
                "running": "running" + (" and healthy" if view.has_healthcheck else ""),
                "shutdown": "shut down (replaced)",
            }.get(task.state, task.state)
            detail = f": {task.error}" if task.error and task.state in FAILED_TASK_STATES else ""
            say(f"{name}: {what} {task.id[:10]} (slot {task.slot}) {meaning}{detail}")


def wait_for_services(
    project: Project,
    names: Sequence[str],
    *,
    watch: _Watch,
    rows: dict[str, ServiceProgress],
    deadline: float,
    started: float,
    reporter: Reporter,
    notes: list[str],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[tuple[str, str]], bool]:
    """Poll until every named service is done; return (failures, timed out)."""
    docker_cmd = project.compose.docker_cmd
    stack = stack_name(project)

    def say(text: str) -> None:
        notes.append(text)
        reporter.step(text)

    while True:
        views = read_stack(docker_cmd, stack)
        _report_tasks(views, watch, names, say)
        failures: list[tuple[str, str]] = []
        changed: list[ServiceProgress] = []
        pending = False
        for name in names:
            status, done, failure = judge_service(views.get(name), watch)
            row = rows[name]
            if status == "rolled back" and name not in watch.rolled_back:
                watch.rolled_back[name] = views[name].update_message
                say(f"{name}: update failed, swarm rolled it back ({views[name].update_message})")
            if row.status != status or row.failure != failure:
                row.status, row.failure = status, failure
                row.elapsed = time.monotonic() - started
                changed.append(row)
            row.done = done and not failure
            if failure:
                failures.append((name, failure))
            elif not done:
                pending = True
        reporter.progress(list(rows.values()), changed)
        if failures and not any(rows[n].status in ("rolling back", "updating") for n in names):
            return failures, False
        if not pending and not failures:
            return [], False
        if time.monotonic() >= deadline:
            late = [
                (n, f"not healthy after the timeout ({rows[n].status})")
                for n in names
                if not rows[n].done and not any(n == f for f, _ in failures)
            ]
            return failures + late, True
        sleep(POLL_SECONDS)


def deploy_steps(stack: Stack, services: Sequence[str]) -> list[list[str]]:
    """The services grouped by dependency depth, each group only needing earlier ones."""
    chosen = set(services)
    return [g for g in ([n for n in layer if n in chosen] for layer in stack.startup_layers()) if g]


def _failure_details(
    project: Project, failures: Sequence[tuple[str, str]], views: Mapping[str, ServiceView]
) -> list[ServiceFailure]:
    docker_cmd = project.compose.docker_cmd
    out = []
    for name, reason in failures:
        view = views.get(name)
        errors = tuple(f"{t.state}: {t.error}" for t in (view.tasks if view else ()) if t.error)[
            -3:
        ]
        logs = (
            engine_swarm.service_logs(docker_cmd, view.full_name, tail=30, scrub=project.env.scrub)
            if view
            else ""
        )
        out.append(ServiceFailure(service=name, reason=reason, health_log=errors, logs=logs))
    return out


def deploy_targets(project: Project, services: Sequence[str]) -> tuple[list[str], bool]:
    """(the services a deploy changes, whether it is an update of a live stack).

    Without ``services``: every active service. With ``services`` on a stack that exists: a
    rolling update of just those (swarm leaves the others alone); on a new stack, those
    services and what they depend on."""
    requested = list(parse_services(services))
    existing = read_stack(project.compose.docker_cmd, stack_name(project))
    update_only = bool(requested) and bool(existing)
    return (requested if update_only else with_dependencies(project.stack, requested)), update_only


def check_ready(project: Project, services: Sequence[str]) -> list[str]:
    """What must hold before anything is checked or changed: a swarm manager, no compose
    project of the environment on this host, and every image on this node. Returns the
    services the deploy changes (:func:`deploy_targets`)."""
    env = project.env
    docker_cmd = project.compose.docker_cmd
    require_swarm_manager(docker_cmd)
    if engine_containers.project_containers(docker_cmd, project.compose.project_name):
        raise LakehouseError(
            f"{env.name} is running under compose on this host (project "
            f"{project.compose.project_name}); tear it down first (`invoke teardown --env "
            f"{env.name}`) or deploy the stack under another COMPOSE_PROJECT_NAME.",
            ExitCode.DEPLOY_FAILED,
        )
    stack = project.stack
    targets, _update_only = deploy_targets(project, services)
    missing = missing_images(docker_cmd, {stack.services[n].image for n in targets})
    if missing:
        raise LakehouseError(
            f"These images are not on this node: {', '.join(missing)}; build or load them "
            "(docker stack deploy runs with --resolve-image never), then deploy again.",
            ExitCode.DEPLOY_FAILED,
        )
    return targets


def apply_stack(
    project: Project,
    targets: Sequence[str],
    *,
    update_only: bool,
    prune: bool,
    timeout: float,
    options: SwarmOptions | None = None,
    reporter: Reporter | None = None,
    workdir: Path | None = None,
) -> WaitOutcome:
    """Deploy (or update) ``targets`` as a swarm stack and wait until they are healthy.

    A full deploy goes step by step in dependency order (see the module docstring), the last
    step with ``--prune`` when ``prune``. A service whose update never becomes healthy is
    rolled back by swarm (``failure_action: rollback``): the outcome then fails and names it
    in ``rolled_back``."""
    reporter = reporter or Reporter()
    options = options or options_for(project)
    env = project.env
    stack = project.stack
    name = stack_name(project)
    docker_cmd = project.compose.docker_cmd
    started = time.monotonic()
    notes: list[str] = []
    if any(is_stateful(stack.services[n]) for n in targets):
        note = ensure_storage_node(docker_cmd, label_node=options.label_node)
        notes.append(note)
        reporter.step(note)
    full = project_stack_file(project, options=options)
    for line in full.notes:
        reporter.warn(line)
    created = ensure_secrets(docker_cmd, name, [s for s in full.secrets if s.service in targets])
    if created:
        notes.append(f"created {len(created)} swarm secret(s)")
    existing = read_stack(docker_cmd, name)
    rows = {
        n: ServiceProgress(
            service=n, layer=stack.services[n].layer, oneshot=stack.services[n].oneshot
        )
        for n in targets
    }
    watch = _Watch(before={n: (v.update_state, v.update_started) for n, v in existing.items()})
    for view in existing.values():
        for task in view.tasks:
            watch.tasks[task.id] = task.state
    deadline = started + timeout
    steps = [sorted(targets)] if update_only else deploy_steps(stack, targets)
    failures: list[tuple[str, str]] = []
    timed_out = False
    with tempfile.TemporaryDirectory(prefix="lakehouse-swarm-", dir=workdir) as tmp:
        deployed: list[str] = []
        for index, step in enumerate(steps, 1):
            deployed += step
            last_prune = prune and index == len(steps)
            stack_file = project_stack_file(project, options=options, services=deployed)
            path = stack_file.write(Path(tmp), f"stack-{index}.yaml")
            verb = "updating" if update_only else f"step {index}/{len(steps)}"
            reporter.step(
                f"{verb}: docker stack deploy {', '.join(step)}"
                + (" --prune" if last_prune else "")
            )
            try:
                engine_swarm.stack_deploy(docker_cmd, name, path, prune=last_prune, scrub=env.scrub)
            except LakehouseError as exc:
                failures = [(step[0], exc.message)]
                break
            failures, timed_out = wait_for_services(
                project,
                deployed,
                watch=watch,
                rows=rows,
                deadline=deadline,
                started=started,
                reporter=reporter,
                notes=notes,
            )
            if failures:
                break
    reporter.finish()
    return WaitOutcome(
        ok=not failures,
        rows=list(rows.values()),
        failures=failures,
        timed_out=timed_out,
        elapsed=time.monotonic() - started,
        kind="update" if update_only else "deploy",
        notes=notes,
        rolled_back=sorted(watch.rolled_back.items()),
    )


def failure_details(project: Project, failures: Sequence[tuple[str, str]]) -> list[ServiceFailure]:
    """Each failing service with its tasks' last errors and its last log lines."""
    views = read_stack(project.compose.docker_cmd, stack_name(project))
    return _failure_details(project, failures, views)


# ---- teardown -------------------------------------------------------------------------------
def remove_stack(
    project: Project,
    *,
    remove_volumes: bool = False,
    timeout: float = 120.0,
    notify: Callable[[str], None] = lambda _text: None,
    sleep: Callable[[float], None] = time.sleep,
) -> TeardownResult:
    """``docker stack rm``, then wait until the stack's services, containers and networks are
    gone; the tool's secrets of the stack are removed; volumes only with ``remove_volumes``
    (the lifecycle has confirmed and checked the prod rules)."""
    docker_cmd = project.compose.docker_cmd
    name = stack_name(project)
    volume_names = sorted(
        {project.stack.volumes.get(v, v) for s in project.stack.active.values() for v in s.volumes}
    )
    before = engine_volumes.existing_volumes(docker_cmd, volume_names)
    notify(f"docker stack rm {name}")
    if engine_swarm.stack_services(docker_cmd, name):
        engine_swarm.stack_rm(docker_cmd, name)
    deadline = time.monotonic() + timeout
    containers: list[str] = []
    while True:
        services = engine_swarm.stack_services(docker_cmd, name)
        containers = engine_swarm.stack_containers(docker_cmd, name)
        networks = engine_swarm.stack_networks(docker_cmd, name)
        if not services and not containers and not networks:
            break
        if time.monotonic() >= deadline:
            containers = (
                containers
                + [f"service {s.get('Spec', {}).get('Name')}" for s in services]
                + [f"network {n}" for n in networks]
            )
            break
        sleep(POLL_SECONDS)
    kept = engine_swarm.remove_secrets(docker_cmd, engine_swarm.stack_secrets(docker_cmd, name))
    if kept:
        notify(f"secrets still in use, kept: {', '.join(kept)}")
    if remove_volumes and before:
        engine_volumes.remove_volumes(docker_cmd, before)
    return TeardownResult(
        environment=project.env.name,
        project_name=name,
        remove_volumes=remove_volumes,
        volumes_before=before,
        volumes_after=engine_volumes.existing_volumes(docker_cmd, volume_names),
        containers_left=containers,
    )
