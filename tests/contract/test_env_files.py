"""The contract of the environment files and of env/variables.yaml."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from .stack import (
    COMPOSE_DIR,
    ENV_DIR,
    ENVIRONMENTS,
    compose_variables,
    env_values,
    memory_bytes,
    variables_schema,
)

TYPES = {
    "str",
    "int",
    "port",
    "bool",
    "cpu",
    "memory",
    "size",
    "duration",
    "enum",
    "secret",
    "path",
}
SECRET_NAME = re.compile(
    r"PASSWORD|SECRET|TOKEN|FERNET|CREDENTIAL|_KEY$|^MINIO_ROOT_USER$|_ADMIN_USER$"
)

# The seed's environment comparison table.
EXPECTED = {
    "dev": {
        "RESTART_POLICY": "no",
        "HEALTHCHECK_INTERVAL": "15s",
        "HEALTHCHECK_START_PERIOD": "20s",
        "LOG_MAX_SIZE": "5m",
        "LOG_MAX_FILE": "2",
        "ENABLE_MONITORING": "false",
        "SPARK_WORKER_COUNT": "1",
        "DEBUG": "true",
        "HTTPS_MODE": "disabled",
        "BACKUP_RETENTION_DAYS": "0",
        "BACKUP_SCHEDULE": "manual",
        "BIND_ADDRESS": "0.0.0.0",
        "COMPOSE_PROJECT_NAME": "lakehouse-dev",
        "LOG_LEVEL": "DEBUG",
    },
    "staging": {
        "RESTART_POLICY": "unless-stopped",
        "HEALTHCHECK_INTERVAL": "30s",
        "HEALTHCHECK_START_PERIOD": "60s",
        "LOG_MAX_SIZE": "10m",
        "LOG_MAX_FILE": "5",
        "ENABLE_MONITORING": "true",
        "SPARK_WORKER_COUNT": "2",
        "DEBUG": "false",
        "HTTPS_MODE": "optional",
        "BACKUP_RETENTION_DAYS": "7",
        "BACKUP_SCHEDULE": "daily",
        "BIND_ADDRESS": "127.0.0.1",
        "COMPOSE_PROJECT_NAME": "lakehouse-staging",
    },
    "prod": {
        "RESTART_POLICY": "unless-stopped",
        "HEALTHCHECK_INTERVAL": "30s",
        "HEALTHCHECK_START_PERIOD": "90s",
        "LOG_MAX_SIZE": "20m",
        "LOG_MAX_FILE": "10",
        "ENABLE_MONITORING": "true",
        "SPARK_WORKER_COUNT": "2",
        "DEBUG": "false",
        "HTTPS_MODE": "enforced",
        "BACKUP_RETENTION_DAYS": "30",
        "BACKUP_SCHEDULE": "daily",
        "BIND_ADDRESS": "127.0.0.1",
        "COMPOSE_PROJECT_NAME": "lakehouse-prod",
    },
}

# The seed's resource table: (dev CPU, dev RAM, prod CPU, prod RAM) per limit prefix.
SEED_LIMITS = {
    "MINIO": ("0.5", "512M", "2.0", "4G"),
    "METASTORE_DB": ("0.5", "512M", "2.0", "4G"),
    "SUPERSET_DB": ("0.5", "512M", "2.0", "4G"),
    "AIRFLOW_DB": ("0.5", "512M", "2.0", "4G"),
    "HIVE_METASTORE": ("0.5", "512M", "2.0", "4G"),
    "SPARK_MASTER": ("1.0", "2G", "4.0", "8G"),
    "SPARK_WORKER": ("2.0", "3G", "8.0", "20G"),
    "TRINO": ("2.0", "4G", "8.0", "16G"),
    "SUPERSET": ("1.0", "1G", "4.0", "8G"),
    "AIRFLOW_WEBSERVER": ("0.5", "1G", "2.0", "4G"),
    "AIRFLOW_SCHEDULER": ("1.0", "1G", "4.0", "4G"),
    "INGESTOR": ("1.0", "2G", "1.0", "2G"),
    "DBT": ("1.0", "2G", "1.0", "2G"),
}
RESOURCE = re.compile(r"^[A-Z0-9_]+_(CPU|MEMORY)_(LIMIT|RESERVATION)$")


@pytest.fixture(params=ENVIRONMENTS)
def env(request):
    return request.param


def test_env_file_syntax(env):
    for number, line in enumerate((ENV_DIR / f"{env}.env").read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*=[^\s].*|[A-Z][A-Z0-9_]*=", line), (
            f"{env}:{number}: {line}"
        )
        assert "${" not in line and "$" not in line.split("=", 1)[1], (
            f"{env}:{number}: interpolation"
        )


def test_env_file_has_at_least_40_variables(env):
    assert len(env_values(env)) >= 40


def test_env_file_follows_the_comparison_table(env):
    values = env_values(env)
    for name, expected in EXPECTED[env].items():
        assert values[name] == expected, f"{env}: {name}"


def test_every_credential_is_present(env):
    values = env_values(env)
    for name in (
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "SUPERSET_SECRET_KEY",
        "SUPERSET_ADMIN_USER",
        "SUPERSET_ADMIN_PASSWORD",
        "AIRFLOW_ADMIN_USER",
        "AIRFLOW_ADMIN_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_SECRET_KEY",
        "GRAFANA_ADMIN_USER",
        "GRAFANA_ADMIN_PASSWORD",
        *(
            f"{db}_DB_{part}"
            for db in ("METASTORE", "SUPERSET", "AIRFLOW")
            for part in ("USER", "PASSWORD", "NAME")
        ),
    ):
        assert values.get(name), f"{env}: {name} missing or empty"


def test_secrets_are_placeholders_outside_dev(env):
    schema = variables_schema()
    values = env_values(env)
    secrets = [
        n
        for n, spec in schema.items()
        if spec["type"] == "secret" and spec["required"] and n in values
    ]
    assert len(secrets) >= 12
    # Optional secrets (alert channel URLs) may stay empty: nothing is delivered then.
    optional = [
        n for n, spec in schema.items() if spec["type"] == "secret" and not spec["required"]
    ]
    for name in optional:
        assert values.get(name, "") in ("", "CHANGE_THIS"), f"{env}: {name} must not be tracked"
    for name in secrets:
        if env == "dev":
            assert values[name] and values[name] != "CHANGE_THIS", name
        else:
            assert values[name] == "CHANGE_THIS", f"{env}: {name}"


def test_secret_looking_names_are_typed_secret():
    for name, spec in variables_schema().items():
        if SECRET_NAME.search(name) and not name.endswith("_FILE"):
            assert spec["type"] == "secret", name


def test_files_holding_secrets_are_paths_not_values():
    # OFFSITE_PASSWORD_FILE names the file restic reads the password from: the value is a
    # path (kept in the env file), the secret stays in the file.
    for name, spec in variables_schema().items():
        if SECRET_NAME.search(name) and name.endswith("_FILE"):
            assert spec["type"] == "path", name


def test_staging_resources_are_75_percent_of_prod():
    prod, staging = env_values("prod"), env_values("staging")
    names = [n for n in prod if RESOURCE.match(n)]
    assert len(names) >= 60
    for name in names:
        if "_CPU_" in name:
            assert Decimal(staging[name]) == Decimal(prod[name]) * Decimal("0.75"), name
        else:
            assert memory_bytes(staging[name]) * 4 == memory_bytes(prod[name]) * 3, name


def test_resources_follow_the_seed_table():
    dev, prod = env_values("dev"), env_values("prod")
    for prefix, (dev_cpu, dev_mem, prod_cpu, prod_mem) in SEED_LIMITS.items():
        assert Decimal(dev[f"{prefix}_CPU_LIMIT"]) == Decimal(dev_cpu), prefix
        assert memory_bytes(dev[f"{prefix}_MEMORY_LIMIT"]) == memory_bytes(dev_mem), prefix
        assert Decimal(prod[f"{prefix}_CPU_LIMIT"]) == Decimal(prod_cpu), prefix
        assert memory_bytes(prod[f"{prefix}_MEMORY_LIMIT"]) == memory_bytes(prod_mem), prefix


def test_compose_defaults_are_the_prod_values():
    prod = env_values("prod")
    pattern = re.compile(r"\$\{([A-Z0-9_]+):-([^}]*)\}")
    for path in sorted(COMPOSE_DIR.glob("docker-compose*.yaml")):
        for name, default in pattern.findall(path.read_text()):
            if (
                RESOURCE.match(name)
                or name.startswith("HEALTHCHECK_")
                or name in ("RESTART_POLICY", "LOG_MAX_SIZE", "LOG_MAX_FILE")
                or name.endswith("_IMAGE")
            ):
                assert default == prod[name], (
                    f"{path.name}: ${{{name}:-{default}}} != prod {prod[name]}"
                )


def test_schema_entries_are_well_formed():
    for name, spec in variables_schema().items():
        assert spec["type"] in TYPES, name
        assert isinstance(spec["required"], bool), name
        assert spec["description"].strip(), name
        assert isinstance(spec["used_by"], list) and spec["used_by"], name
        assert ("choices" in spec) == (spec["type"] == "enum"), name


def test_every_variable_is_in_the_schema_and_vice_versa():
    schema = set(variables_schema())
    in_compose = set(compose_variables())
    in_env = {n for e in ENVIRONMENTS for n in env_values(e)}
    assert in_compose - schema == set(), "compose variables missing from variables.yaml"
    assert in_env - schema == set(), "env-file variables missing from variables.yaml"
    assert schema - (in_compose | in_env) == set(), "variables.yaml entries used nowhere"


def test_required_variables_are_in_every_env_file(env):
    values = env_values(env)
    for name, spec in variables_schema().items():
        if spec["required"]:
            assert name in values, f"{env}: required {name} missing"


_VALID = {
    "int": r"\d+",
    "port": r"\d+",
    "bool": r"true|false",
    "cpu": r"\d+(\.\d+)?",
    "memory": r"\d+[MG]",
    "size": r"\d+[kmgKMG]",
    "duration": r"\d+(ms|s|m|h)",
}


def test_env_values_match_their_type(env):
    schema = variables_schema()
    for name, value in env_values(env).items():
        spec = schema[name]
        if spec["type"] in _VALID and value:
            assert re.fullmatch(_VALID[spec["type"]], value), f"{env}: {name}={value!r}"
        if spec["type"] == "port":
            assert 1 <= int(value) <= 65535, name
        if spec["type"] == "enum":
            assert value in [str(c) for c in spec["choices"]], f"{env}: {name}={value!r}"
