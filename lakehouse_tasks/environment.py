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

import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dotenv.parser import parse_stream

from .errors import ConfigError
from .masking import MASK, MIN_SCRUB_LENGTH, Scrubber
from .paths import project_root
from .schema import Schema, load_schema, parse_value

PLACEHOLDER = "CHANGE_THIS"
MIN_PROD_SECRET_LENGTH = 16

#: Values no production secret may have: vendor defaults and the usual suspects.
WELL_KNOWN_DEFAULTS = frozenset(
    {
        "admin",
        "administrator",
        "password",
        "passw0rd",
        "changeme",
        "change_me",
        "secret",
        "minio",
        "minio123",
        "minioadmin",
        "postgres",
        "root",
        "toor",
        "airflow",
        "superset",
        "hive",
        "trino",
        "grafana",
        "prom-operator",
        "test",
        "default",
        "letmein",
        "qwerty",
        "123456",
        "12345678",
        "123456789",
        "thisismysecretkey",
        "your_secret_key_here",
    }
)

#: Environments whose secrets must not be placeholders, and the one whose secrets must be strong.
NON_DEV_ENVIRONMENTS = frozenset({"staging", "prod"})
STRICT_SECRET_ENVIRONMENTS = frozenset({"prod"})


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
            tier = raw.strip().lower()
            files.append(compose / ("rehearsal.real.yaml" if tier == "real" else "rehearsal.yaml"))
            # The TLS proxy exists only where the environment's override defines it.
            if override.exists() and "\n  tls-proxy:" in override.read_text():
                files.append(compose / "rehearsal.proxy.yaml")
        return files


def known_environments(root: Path) -> list[str]:
    """Names of the environments that have a tracked ``env/<name>.env`` file."""
    return sorted(
        p.name[: -len(".env")]
        for p in (root / "env").glob("*.env")
        if not p.name.endswith(".local.env")
    )


_LINE_NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)")


def _env_file_text(path: Path) -> str:
    """The text of an env file, which must be UTF-8: a UTF-16 or Latin-1 file is one sentence
    naming the file (and line) and the fix, never a traceback and never its content."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read {path} ({exc.strerror}); check the path and permissions."
        ) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise ConfigError(
            f"{path} is UTF-16 encoded, not UTF-8; save it as UTF-8 "
            f"(for example `iconv -f UTF-16 -t UTF-8 {path.name} > {path.name}.utf8`)."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (Latin-1?); save the file as UTF-8 "
            f"(for example `iconv -f LATIN1 -t UTF-8 {path.name} > {path.name}.utf8`)."
        ) from None


def read_env_file(path: Path) -> dict[str, str]:
    """Parse one dotenv file; a malformed line is an error naming the file, line and variable
    name (never the value: the line may hold a secret)."""
    text = _env_file_text(path)
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        line = binding.original.line + (len(original) - len(original.lstrip("\n")))
        if binding.error or (binding.key is not None and binding.value is None):
            match = _LINE_NAME.match(original.lstrip("\n"))
            if match is None:
                raise ConfigError(
                    f"{path}:{line}: malformed line; write it as NAME=value (or remove it)."
                )
            name = match.group(1)
            rest = original.lstrip("\n")[match.end() :].lstrip()
            if rest.startswith(":"):
                raise ConfigError(
                    f"{path}:{line}: {name} is written YAML-style (NAME: value); "
                    f"write it as {name}=value."
                )
            raise ConfigError(
                f"{path}:{line}: malformed line for {name}; write it as {name}=value "
                "(or remove it)."
            )
        if binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    return values


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


def _where(env: Environment, key: str) -> str:
    return env.sources.get(key, f"env/{env.name}.env")


def _check_worker_count(env: Environment) -> None:
    """SPARK_WORKER_COUNT must name one of the compose/spark-workers.N.yaml files."""
    raw = (env.get("SPARK_WORKER_COUNT") or "").strip()
    offered = sorted(
        p.name.split(".")[1] for p in (env.root / "compose").glob("spark-workers.*.yaml")
    )
    if raw and offered and raw not in offered:
        raise ConfigError(
            f"SPARK_WORKER_COUNT in {_where(env, 'SPARK_WORKER_COUNT')}: {raw!r} is not a "
            f"supported number of Spark workers; set it to {' or '.join(offered)}."
        )


def weak_secrets_advice(env: Environment, weak: list[str]) -> str:
    """The sentence about weak prod secrets, naming the layer each value came from:
    ``secrets.generate --rotate`` writes env/<name>.local.env, which does not help when the
    value comes from a higher layer (an --env-file or the process environment)."""
    rotatable = (f"env/{env.name}.env", f"env/{env.name}.local.env")
    here = [k for k in weak if _where(env, k) in rotatable]
    above = [k for k in weak if k not in here]
    fixes: list[str] = []
    if here:
        fixes.append(
            f"run `invoke secrets.generate --env {env.name} --rotate {','.join(here)}` or set "
            f"strong values in env/{env.name}.local.env"
        )
    for key in above:
        where = _where(env, key)
        if where == "process environment":
            fixes.append(
                f"{key} comes from the process environment, which overrides every file: "
                "export a strong value there or unset it"
            )
        else:
            fixes.append(
                f"{key} comes from {where}, which overrides env/{env.name}.local.env: set a "
                "strong value in that file"
            )
    return (
        f"Environment {env.name!r} has weak secrets in {', '.join(weak)} (shorter than "
        f"{MIN_PROD_SECRET_LENGTH} characters or a well-known default); " + "; ".join(fixes) + "."
    )


def validate(env: Environment, *, strict: bool = True) -> list[str]:
    """Raise ``ConfigError`` for the first kind of problem found; return soft warnings."""
    missing = [k for k in env.schema.required if not env.values.get(k)]
    if missing:
        raise ConfigError(
            f"Environment {env.name!r} is missing required variable"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"set {'them' if len(missing) > 1 else 'it'} in env/{env.name}.env or "
            f"env/{env.name}.local.env."
        )
    for key, raw in env.values.items():
        var = env.schema.get(key)
        if var is None or (raw == "" and not var.required):
            continue
        try:
            parse_value(var, raw)
        except ValueError as exc:
            shown = "the value" if env.is_secret(key) else repr(raw)
            raise ConfigError(f"{key} in {_where(env, key)}: {shown} {exc}.") from None

    _check_worker_count(env)

    problems: list[str] = []
    placeholders = sorted(k for k, v in env.values.items() if PLACEHOLDER in v)
    if placeholders and env.name in NON_DEV_ENVIRONMENTS:
        problems.append(
            f"Environment {env.name!r} still has {PLACEHOLDER} placeholders in "
            f"{', '.join(placeholders)}; run `invoke secrets.generate --env {env.name}` or set "
            f"them in env/{env.name}.local.env."
        )
    if env.name in STRICT_SECRET_ENVIRONMENTS:
        weak = sorted(
            k
            for k, v in env.values.items()
            if env.is_secret(k)
            and v
            and PLACEHOLDER not in v
            and (len(v) < MIN_PROD_SECRET_LENGTH or v.strip().lower() in WELL_KNOWN_DEFAULTS)
        )
        if weak:
            problems.append(weak_secrets_advice(env, weak))
    if problems and strict:
        raise ConfigError(" ".join(problems))
    return problems
