"""Credentials as swarm secrets: immutable, named by a hash of their value, read by the services through ``*_FILE`` variables (or as compose file secrets)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...engine import swarm as engine_swarm
from ...errors import ConfigError

if TYPE_CHECKING:
    pass


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


@dataclass(frozen=True)
class SecretRef:
    """One credential delivered as a swarm secret (the value is never printed)."""

    service: str
    variable: str  # the container's variable, e.g. POSTGRES_PASSWORD
    file_variable: str  # what the container reads instead, e.g. POSTGRES_PASSWORD_FILE
    name: str  # the swarm secret's name
    value: str = field(repr=False, default="")


def _unescape(value: str) -> str:
    """A value as the container sees it (compose config writes ``$`` as ``$$``)."""
    return value.replace("$$", "$")


def secret_name(stack: str, service: str, variable: str, value: str) -> str:
    """Swarm secrets are immutable: the name carries a hash of the value, so a rotated
    credential is a new secret and the service update rolls it out."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    base = f"{stack}_{service}_{variable.lower()}"
    return f"{base[: 63 - 11]}_{digest}"


def secret_refs(
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


def file_secret_refs(
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
