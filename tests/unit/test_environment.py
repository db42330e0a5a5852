"""Layering, validation and masking of environments (no engine needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from invoke import Context, Exit

from lakehouse_tasks.environment import MASK, load_environment
from lakehouse_tasks.errors import ConfigError, ExitCode
from lakehouse_tasks.testing import write_env

SCHEMA = """
COMPOSE_PROJECT_NAME: {type: str, required: true}
MINIO_ROOT_USER: {type: str, required: true}
MINIO_ROOT_PASSWORD: {type: secret, required: true}
AIRFLOW_FERNET_KEY: {type: secret}
MINIO_API_PORT: {type: port, required: true}
DEBUG: {type: bool}
MINIO_MEMORY_LIMIT: {type: memory}
MINIO_CPU_LIMIT: {type: cpu}
HEALTHCHECK_INTERVAL: {type: duration}
LOG_MAX_FILE: {type: int}
RESTART_POLICY: {type: enum, choices: ["no", unless-stopped, always, on-failure]}
TLS_KEY_FILE: {type: path}
"""

GOOD = {
    "COMPOSE_PROJECT_NAME": "lakehouse-dev",
    "MINIO_ROOT_USER": "minio",
    "MINIO_ROOT_PASSWORD": "minio123",
    "MINIO_API_PORT": "9000",
    "DEBUG": "true",
    "MINIO_MEMORY_LIMIT": "512M",
    "MINIO_CPU_LIMIT": "0.5",
    "HEALTHCHECK_INTERVAL": "15s",
    "LOG_MAX_FILE": "2",
    "RESTART_POLICY": "no",
}

STRONG = "s3cr3t-" + "x" * 30


@pytest.fixture
def project(lakehouse_project: Path) -> Path:
    (lakehouse_project / "env" / "variables.yaml").write_text(SCHEMA)
    write_env(lakehouse_project, "dev", GOOD)
    prod = {**GOOD, "COMPOSE_PROJECT_NAME": "lakehouse-prod", "RESTART_POLICY": "unless-stopped"}
    prod["MINIO_ROOT_PASSWORD"] = "CHANGE_THIS"
    prod["AIRFLOW_FERNET_KEY"] = "CHANGE_THIS"
    write_env(lakehouse_project, "prod", prod)
    return lakehouse_project


def load(name: str, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("process_env", {})
    return load_environment(name, **kw)


# ---- layering -------------------------------------------------------------------------


def test_layers_apply_lowest_to_highest(project: Path, tmp_path: Path) -> None:
    write_env(project, "dev", {"MINIO_API_PORT": "9100", "DEBUG": "false"}, local=True)
    extra = tmp_path / "extra.env"
    extra.write_text("MINIO_API_PORT=9200\n")
    env = load("dev", env_files=[extra], process_env={"DEBUG": "true", "UNRELATED": "x"})
    assert env.values["MINIO_API_PORT"] == "9200"
    assert env.sources["MINIO_API_PORT"] == str(extra)
    assert env.values["DEBUG"] == "true"
    assert env.sources["DEBUG"] == "process environment"
    assert env.values["MINIO_ROOT_USER"] == "minio"
    assert env.sources["MINIO_ROOT_USER"] == "env/dev.env"
    assert "UNRELATED" not in env.values


def test_local_file_overrides_tracked_file(project: Path) -> None:
    write_env(project, "dev", {"MINIO_ROOT_USER": "alice"}, local=True)
    env = load("dev")
    assert env.values["MINIO_ROOT_USER"] == "alice"
    assert env.sources["MINIO_ROOT_USER"] == "env/dev.local.env"


def test_local_env_files_are_not_environments(project: Path) -> None:
    write_env(project, "dev", {"DEBUG": "true"}, local=True)
    with pytest.raises(ConfigError) as err:
        load("dev.local")
    assert "known environments: dev, prod" in err.value.message


# ---- validation errors ----------------------------------------------------------------


def test_unknown_environment_lists_known_ones(project: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load("qa")
    assert err.value.exit_code == ExitCode.BAD_INPUT == 2
    assert "Unknown environment 'qa'" in err.value.message
    assert "dev, prod" in err.value.message


def test_missing_extra_env_file(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.env does not exist"):
        load("dev", env_files=["nope.env"])


def test_malformed_line_names_file_and_line(project: Path) -> None:
    path = project / "env" / "dev.env"
    path.write_text(path.read_text() + "# comment\n\nthis is not an assignment\n")
    with pytest.raises(ConfigError) as err:
        load("dev")
    lines = len(GOOD) + 3
    assert f"dev.env:{lines}: malformed line" in err.value.message


def test_required_variable_missing(project: Path) -> None:
    write_env(project, "dev", {k: v for k, v in GOOD.items() if k != "MINIO_ROOT_USER"})
    with pytest.raises(ConfigError, match="missing required variable MINIO_ROOT_USER"):
        load("dev")


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("MINIO_API_PORT", "90000", "out of range"),
        ("MINIO_API_PORT", "http", "not a port number"),
        ("DEBUG", "maybe", "not a boolean"),
        ("MINIO_MEMORY_LIMIT", "lots", "not a size"),
        ("MINIO_CPU_LIMIT", "two", "not a CPU count"),
        ("HEALTHCHECK_INTERVAL", "15", "not a duration"),
        ("LOG_MAX_FILE", "2.5", "not a whole number"),
        ("RESTART_POLICY", "sometimes", "must be one of"),
    ],
)
def test_wrong_types_are_named(project: Path, name: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        load("dev", process_env={name: value})
    assert name in err.value.message and reason in err.value.message


def test_placeholders_in_prod_name_each_variable_without_values(project: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load("prod")
    msg = err.value.message
    assert "AIRFLOW_FERNET_KEY, MINIO_ROOT_PASSWORD" in msg
    assert "secrets.generate --env prod" in msg


def test_placeholders_are_warnings_for_read_only_views(project: Path) -> None:
    env = load("prod", strict=False)
    assert any("CHANGE_THIS" in w for w in env.warnings)


@pytest.mark.parametrize("weak", ["minio123", "admin", "password", "short-but-new"])
def test_weak_prod_secrets_are_refused(project: Path, weak: str) -> None:
    write_env(
        project,
        "prod",
        {"MINIO_ROOT_PASSWORD": weak, "AIRFLOW_FERNET_KEY": STRONG},
        local=True,
    )
    with pytest.raises(ConfigError) as err:
        load("prod")
    assert "weak secrets in MINIO_ROOT_PASSWORD" in err.value.message
    assert weak not in err.value.message


def test_strong_prod_secrets_pass(project: Path) -> None:
    write_env(
        project,
        "prod",
        {"MINIO_ROOT_PASSWORD": STRONG, "AIRFLOW_FERNET_KEY": STRONG + "y"},
        local=True,
    )
    env = load("prod")
    assert env.warnings == ()


# ---- masking --------------------------------------------------------------------------


def test_masked_values_hide_every_secret(project: Path) -> None:
    env = load("dev")
    masked = env.masked()
    assert masked["MINIO_ROOT_PASSWORD"] == MASK
    assert masked["MINIO_ROOT_USER"] == "minio"
    assert env.scrub("password is minio123 ok") == f"password is {MASK} ok"


def test_env_show_never_prints_a_secret(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lakehouse_tasks.tasks.env import show

    show(Context(), env="dev")
    plain = capsys.readouterr().out
    show(Context(), env="dev", json_=True)
    data = capsys.readouterr().out
    for text in (plain, data):
        assert "minio123" not in text
        assert MASK in text
    parsed = json.loads(data)
    assert parsed["variables"]["MINIO_ROOT_PASSWORD"] == MASK
    assert "MINIO_ROOT_PASSWORD" in parsed["secrets"]
    assert parsed["variables"]["MINIO_API_PORT"] == "9000"


def test_task_turns_config_error_into_exit_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.env import show

    with pytest.raises(Exit) as exc:
        show(Context(), env="qa")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Unknown environment 'qa'" in err
    assert "Traceback" not in err
