"""env.diff and secrets.generate (no engine needed)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from invoke import Context

from lakehouse_tasks.environment import MASK, load_environment, read_env_file
from lakehouse_tasks.secretgen import generate_secrets
from lakehouse_tasks.testing import write_env

SCHEMA = """
COMPOSE_PROJECT_NAME: {type: str, required: true}
MINIO_ROOT_PASSWORD: {type: secret, required: true}
AIRFLOW_FERNET_KEY: {type: secret}
SUPERSET_ADMIN_USER: {type: str}
RESTART_POLICY: {type: str}
DEBUG: {type: bool}
"""


@pytest.fixture
def project(lakehouse_project: Path) -> Path:
    (lakehouse_project / "env" / "variables.yaml").write_text(SCHEMA)
    write_env(
        lakehouse_project,
        "dev",
        {
            "COMPOSE_PROJECT_NAME": "lakehouse-dev",
            "MINIO_ROOT_PASSWORD": "minio123",
            "AIRFLOW_FERNET_KEY": "devkey",
            "RESTART_POLICY": "no",
            "DEBUG": "true",
        },
    )
    write_env(
        lakehouse_project,
        "prod",
        {
            "COMPOSE_PROJECT_NAME": "lakehouse-prod",
            "MINIO_ROOT_PASSWORD": "CHANGE_THIS",
            "AIRFLOW_FERNET_KEY": "CHANGE_THIS",
            "SUPERSET_ADMIN_USER": "CHANGE_THIS",
            "RESTART_POLICY": "unless-stopped",
        },
    )
    return lakehouse_project


def test_env_diff_highlights_differences_and_masks(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.env import diff

    diff(Context(), "dev", "prod", json_=True)
    data = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in data["variables"]}
    assert rows["RESTART_POLICY"] == {
        "name": "RESTART_POLICY",
        "dev": "no",
        "prod": "unless-stopped",
        "status": "differs",
    }
    assert rows["MINIO_ROOT_PASSWORD"]["dev"] == MASK
    assert rows["DEBUG"]["status"] == "only dev"
    diff(Context(), "dev", "prod")
    plain = capsys.readouterr().out
    assert "minio123" not in plain and "devkey" not in plain
    assert "RESTART_POLICY" in plain and "unless-stopped" in plain
    assert "COMPOSE_PROJECT_NAME" in plain  # differs
    assert "\x1b[" not in plain  # piped output has no colour codes


def test_generate_fills_placeholders_with_mode_0600(project: Path) -> None:
    result = generate_secrets("prod")
    local = project / "env" / "prod.local.env"
    assert result.filled == ("AIRFLOW_FERNET_KEY", "MINIO_ROOT_PASSWORD")
    assert result.needs_value == ("SUPERSET_ADMIN_USER",)
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    values = read_env_file(local)
    assert len(values["MINIO_ROOT_PASSWORD"]) >= 32
    assert values["MINIO_ROOT_PASSWORD"] != values["AIRFLOW_FERNET_KEY"]
    import base64

    assert len(base64.urlsafe_b64decode(values["AIRFLOW_FERNET_KEY"])) == 32
    env = load_environment("prod", process_env={}, strict=False)
    assert env.values["MINIO_ROOT_PASSWORD"] == values["MINIO_ROOT_PASSWORD"]


def test_generate_never_overwrites_a_set_value(project: Path) -> None:
    write_env(project, "prod", {"MINIO_ROOT_PASSWORD": "my-own-strong-password-123"}, local=True)
    result = generate_secrets("prod")
    assert "MINIO_ROOT_PASSWORD" in result.kept
    assert "MINIO_ROOT_PASSWORD" not in result.filled
    values = read_env_file(project / "env" / "prod.local.env")
    assert values["MINIO_ROOT_PASSWORD"] == "my-own-strong-password-123"
    first = values["AIRFLOW_FERNET_KEY"]
    again = generate_secrets("prod")
    assert again.filled == ()
    assert read_env_file(project / "env" / "prod.local.env")["AIRFLOW_FERNET_KEY"] == first


def test_rotate_replaces_only_named_secrets(project: Path) -> None:
    generate_secrets("prod")
    before = read_env_file(project / "env" / "prod.local.env")
    result = generate_secrets("prod", rotate=["MINIO_ROOT_PASSWORD"])
    after = read_env_file(project / "env" / "prod.local.env")
    assert result.rotated == ("MINIO_ROOT_PASSWORD",)
    assert after["MINIO_ROOT_PASSWORD"] != before["MINIO_ROOT_PASSWORD"]
    assert after["AIRFLOW_FERNET_KEY"] == before["AIRFLOW_FERNET_KEY"]


def test_generate_task_output_names_filled_secrets_but_no_values(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lakehouse_tasks.tasks.secrets import generate

    generate(Context(), env="prod")
    captured = capsys.readouterr()
    values = read_env_file(project / "env" / "prod.local.env")
    assert "MINIO_ROOT_PASSWORD" in captured.err
    for value in values.values():
        assert value not in captured.out + captured.err
