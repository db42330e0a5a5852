"""Load, layer and validate an environment into an immutable :class:`Environment`.

Layers, lowest to highest precedence:

1. ``env/<name>.env``         tracked, no real secrets in staging/prod
2. ``env/<name>.local.env``   untracked (gitignored): secrets and machine-specific values
3. files given with ``--env-file`` (in the order given)
4. the process environment    only for names the schema or the files know

Validation raises :class:`~lakehouse_tasks.errors.ConfigError` (exit 2) whose message names the
file, line or variable and the fix, and never contains a secret's value.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .envfiles import known_environments, read_env_file
from .envrules import (
    MIN_PROD_SECRET_LENGTH,
    NON_DEV_ENVIRONMENTS,
    PLACEHOLDER,
    STRICT_SECRET_ENVIRONMENTS,
    WELL_KNOWN_DEFAULTS,
    validate,
)
from .errors import ConfigError
from .masking import MASK, MIN_SCRUB_LENGTH, Scrubber
from .paths import project_root
from .schema import Schema, load_schema, parse_value


@dataclass(frozen=True)
class Environment:
    """A resolved environment: every variable's value and where it came from."""

    name: str
    root: Path
    values: Mapping[str, str]
    sources: Mapping[str, str]
    schema: Schema
    files: tuple[Path, ...]
    warnings: tuple[str, ...] = field(default=())

    # ---- values -------------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def typed(self, name: str, default: Any = None) -> Any:
        """The value parsed by its declared type (raw string when undeclared)."""
        raw = self.values.get(name)
        if raw is None:
            return default
        var = self.schema.get(name)
        return parse_value(var, raw) if var else raw

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.values.get(name)
        if raw is None or raw == "":
            return default
        return raw.strip().lower() in {"true", "yes", "1", "on"}

    @property
    def project_name(self) -> str:
        return self.values.get("COMPOSE_PROJECT_NAME") or f"lakehouse-{self.name}"

    # ---- secrets ------------------------------------------------------------------------
    def is_secret(self, name: str) -> bool:
        return self.schema.is_secret(name)

    @property
    def secret_values(self) -> frozenset[str]:
        """Every non-trivial secret value, for scrubbing free text (logs, compose output)."""
        return frozenset(
            v
            for k, v in self.values.items()
            if self.is_secret(k) and v and len(v) >= MIN_SCRUB_LENGTH
        )

    @cached_property
    def scrubber(self) -> Scrubber:
        """The scrubber of this environment's secret values (built once)."""
        return Scrubber(self.secret_values)

    def masked(self) -> dict[str, str]:
        """All values with every secret replaced by a fixed mask (its length is not shown)."""
        return {k: (MASK if self.is_secret(k) and v else v) for k, v in self.values.items()}

    def scrub(self, text: str) -> str:
        """``text`` with every secret value replaced by the mask."""
        return self.scrubber(text)

    # ---- files --------------------------------------------------------------------------
    def compose_files(self, *, rehearsal: bool = False, extra: Iterable[Path] = ()) -> list[Path]:
        """The compose files of this environment, base first."""
        compose = self.root / "compose"
        files = [compose / "docker-compose.yaml"]
        override = compose / f"docker-compose.override.{self.name}.yaml"
        if override.exists():
            files.append(override)
        # SPARK_WORKER_COUNT decides how many Spark workers run (compose/spark-workers.N.yaml).
        workers = compose / f"spark-workers.{(self.get('SPARK_WORKER_COUNT') or '').strip()}.yaml"
        if self.get("SPARK_WORKER_COUNT") and workers.is_file():
            files.append(workers)
        # The secrets, after the override: as files (staging, prod) or in the environment.
        secrets = compose / (
            "docker-compose.secrets-files.yaml"
            if self.flag("SENSITIVE_AS_FILES")
            else "docker-compose.secrets-env.yaml"
        )
        if secrets.exists():
            files.append(secrets)
        files.extend(extra)
        if rehearsal:
            # LAKEHOUSE_REHEARSAL_TIER=real: the real-application images where they exist
            # (lakehouse_tasks/rehearsal_real.py), stand-ins elsewhere.
            # An env-file value counts as well as the process environment.
            raw = self.get("LAKEHOUSE_REHEARSAL_TIER") or os.environ.get(
                "LAKEHOUSE_REHEARSAL_TIER", ""
            )
            layer = "rehearsal.real" if raw.strip().lower() == "real" else "rehearsal"
            files.append(compose / f"{layer}.yaml")
            # The TLS proxy exists only where the environment's override defines it (on the
            # real tier: Debian's real nginx, rehearsal.real.proxy.yaml).
            if override.exists() and "\n  tls-proxy:" in override.read_text():
                files.append(compose / f"{layer}.proxy.yaml")
        return files


#: Variables an env file may set without a declaration in env/variables.yaml: the
#: rehearsal's stand-in switches (STANDIN_FAULT_<SERVICE>, compose/standins/README.md).
UNDECLARED_PREFIXES = ("STANDIN_",)
#: How close (difflib ratio) an undeclared variable must be to a declared one to be a typo.
TYPO_SIMILARITY = 0.88


def require_known_environment(root: Path, name: str) -> None:
    """Raise ``ConfigError`` naming the nearest known environment when ``name`` has no
    ``env/<name>.env`` (a typo such as ``prdo`` must not read as "nothing recorded")."""
    from .suggest import did_you_mean

    known = known_environments(root)
    if name not in known:
        listing = ", ".join(known) or "none"
        raise ConfigError(
            f"Unknown environment {name!r}{did_you_mean(name, known)}; known environments: "
            f"{listing} (add env/{name}.env to create it)."
        )


def _undeclared(schema: Schema, key: str, label: str) -> str:
    """A variable that env/variables.yaml does not declare: an error when a declared name is
    close (a typo such as MINIO_API_PROT), else a warning (compose may still read it)."""
    from .suggest import nearest

    # Strict: a typo (one or two letters off), not merely a variable of the same family.
    guess = nearest(key, schema.variables, cutoff=TYPO_SIMILARITY)
    if guess is not None:
        raise ConfigError(
            f"{key} in {label} is not a known variable (did you mean {guess}?); fix its name, "
            "or declare it in env/variables.yaml."
        )
    return f"{key} in {label} is not declared in env/variables.yaml; nothing checks its value."


def load_environment(
    name: str,
    *,
    root: Path | None = None,
    env_files: Iterable[str | Path] = (),
    process_env: Mapping[str, str] | None = None,
    strict: bool = True,
) -> Environment:
    """Resolve environment ``name`` and validate it.

    With ``strict=False`` (read-only views such as ``env.show`` or ``config``), remaining
    placeholders and weak production secrets become warnings instead of errors; every other
    problem is still an error.
    """
    root = root or project_root()
    require_known_environment(root, name)
    schema = load_schema(root / "env" / "variables.yaml")
    layers: list[tuple[str, Path]] = [(f"env/{name}.env", root / "env" / f"{name}.env")]
    local = root / "env" / f"{name}.local.env"
    if local.exists():
        layers.append((f"env/{name}.local.env", local))
    for extra in env_files:
        path = Path(extra)
        if not path.is_absolute():
            path = (Path.cwd() / path).resolve()
        if not path.exists():
            raise ConfigError(f"Env file {extra} does not exist; check the --env-file path.")
        layers.append((str(extra), path))

    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    undeclared: list[str] = []
    for label, path in layers:
        for key, value in read_env_file(path).items():
            if key not in schema.variables and not key.startswith(UNDECLARED_PREFIXES):
                undeclared.append(_undeclared(schema, key, label))
            values[key] = value
            sources[key] = label
    environ = os.environ if process_env is None else process_env
    for key in set(schema.variables) | set(values):
        if key in environ:
            values[key] = environ[key]
            sources[key] = "process environment"

    env = Environment(
        name=name,
        root=root,
        values=MappingProxyType(dict(values)),
        sources=MappingProxyType(sources),
        schema=schema,
        files=tuple(p for _, p in layers),
    )
    warnings = undeclared + validate(env, strict=strict)
    return Environment(
        name=env.name,
        root=env.root,
        values=env.values,
        sources=env.sources,
        schema=env.schema,
        files=env.files,
        warnings=tuple(warnings),
    )


#: Also what the rest of the package imports from here: the env file readers and the rules.
__all__ = [
    "MASK",
    "MIN_PROD_SECRET_LENGTH",
    "NON_DEV_ENVIRONMENTS",
    "PLACEHOLDER",
    "STRICT_SECRET_ENVIRONMENTS",
    "WELL_KNOWN_DEFAULTS",
    "Environment",
    "known_environments",
    "load_environment",
    "read_env_file",
    "require_known_environment",
    "validate",
]
