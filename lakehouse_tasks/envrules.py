"""The rules a loaded environment must satisfy before anything runs: placeholder, well-known default and short secrets (strict in prod), the Spark worker count; ``validate`` returns the problems, each with its fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigError
from .schema import parse_value

if TYPE_CHECKING:
    from .environment import Environment

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
