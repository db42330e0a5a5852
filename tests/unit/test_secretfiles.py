"""The secret files the compose `secrets:` of staging and prod read (lakehouse_tasks.secretfiles)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lakehouse_tasks.environment import load_environment
from lakehouse_tasks.secretfiles import (
    DIR_VARIABLE,
    GID_VARIABLE,
    secret_values,
    secrets_dir,
    write_secret_files,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def prod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    return load_environment(
        "prod",
        root=REPO,
        strict=False,
        process_env={
            "MINIO_ROOT_PASSWORD": "m-" + "x" * 30,
            "AIRFLOW_DB_PASSWORD": "p@ss/w:rd",
            "AIRFLOW_DB_USER": "air flow",
        },
    )


def test_files_are_private_to_the_operator_and_the_readers_group(prod) -> None:
    where = write_secret_files(prod, "lakehouse-prod")
    directory = secrets_dir(prod, "lakehouse-prod")
    assert where == {DIR_VARIABLE: str(directory), GID_VARIABLE: str(os.getgid())}
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    password = directory / "MINIO_ROOT_PASSWORD"
    assert password.read_text() == "m-" + "x" * 30  # no trailing newline
    assert stat.S_IMODE(password.stat().st_mode) == 0o640
    # Placeholders are never written: the env file still says CHANGE_THIS for the others.
    assert not (directory / "SUPERSET_SECRET_KEY").exists()


def test_the_airflow_url_is_derived_and_quoted(prod) -> None:
    url = secret_values(prod)["AIRFLOW_SQL_ALCHEMY_CONN"]
    assert url == "postgresql+psycopg2://air%20flow:p%40ss%2Fw%3Ard@airflow-db:5432/airflow"


def test_stale_files_go_and_unchanged_ones_are_not_rewritten(prod, tmp_path: Path) -> None:
    directory = Path(write_secret_files(prod, "p")[DIR_VARIABLE])
    (directory / "OLD_SECRET").write_text("gone soon")
    kept = directory / "MINIO_ROOT_PASSWORD"
    before = kept.stat().st_mtime_ns
    write_secret_files(prod, "p")
    assert not (directory / "OLD_SECRET").exists()
    assert kept.stat().st_mtime_ns == before
