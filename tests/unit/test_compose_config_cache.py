"""The saved merged configuration a health snapshot reads instead of ``compose config``.

``ComposeProject.config_for_reading`` answers from the copy the last ``compose config`` of the
same inputs saved; any change of a compose file, a file beside it, an environment value or a
referenced process variable means a fresh call. A deploy never sees the saved copy.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.engine import compose as engine_compose
from lakehouse_tasks.engine import executor
from lakehouse_tasks.environment import MASK, load_environment
from lakehouse_tasks.project import Project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def compose_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[list[str]]:
    """Fake ``compose config`` answers: the services of the first compose file, with the
    environment's MinIO password in them (a secret)."""
    calls: list[list[str]] = []
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))

    def fake_run(cmd: Any, **_: Any) -> str:
        argv = [str(a) for a in cmd]
        calls.append(argv)
        first = Path(argv[argv.index("--file") + 1])
        env_file = Path(argv[argv.index("--env-file") + 1])
        password = next(
            line.split("=", 1)[1].strip("'")
            for line in env_file.read_text().splitlines()
            if line.startswith("MINIO_ROOT_PASSWORD=")
        )
        services = {
            name: {"image": "busybox", "environment": {"PASSWORD": password}}
            for name in first.read_text().split()
        }
        return json.dumps({"name": "x", "services": services, "volumes": {}})

    monkeypatch.setattr(executor, "run", fake_run)
    return calls


def _project(compose_dir: Path, **values: str) -> Project:
    env = load_environment("dev", strict=False, root=REPO)
    if values:
        env = type(env)(**{**env.__dict__, "values": {**env.values, **values}})
    compose = engine_compose.ComposeProject(
        env=env, files=[compose_dir / "compose.yaml"], project_name="lh-cache"
    )
    return Project(env=env, compose=compose, rehearsal=True)


@pytest.fixture
def compose_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "compose"
    directory.mkdir()
    (directory / "compose.yaml").write_text("minio trino\n")
    return directory


def test_a_second_project_of_the_same_inputs_reads_the_saved_config(
    compose_calls: list[list[str]], compose_dir: Path
) -> None:
    first = _project(compose_dir).stack_for_reading()
    second = _project(compose_dir).stack_for_reading()
    assert len(compose_calls) == 1
    assert sorted(second.services) == sorted(first.services) == ["minio", "trino"]


def test_the_saved_copy_is_private_and_holds_no_secret(
    compose_calls: list[list[str]], compose_dir: Path, tmp_path: Path
) -> None:
    project = _project(compose_dir)
    project.compose.config()
    saved = list((tmp_path / "state" / "compose-config").glob("*.json"))
    assert len(saved) == 1
    assert stat.S_IMODE(os.stat(saved[0]).st_mode) == 0o600
    text = saved[0].read_text()
    assert project.env.values["MINIO_ROOT_PASSWORD"] not in text
    assert MASK in text


@pytest.mark.parametrize("change", ["compose file", "file beside it", "environment value"])
def test_a_changed_input_means_a_fresh_compose_config(
    compose_calls: list[list[str]], compose_dir: Path, change: str
) -> None:
    _project(compose_dir).stack_for_reading()
    values: dict[str, str] = {}
    if change == "compose file":
        (compose_dir / "compose.yaml").write_text("minio trino superset\n")
    elif change == "file beside it":
        (compose_dir / "minio.env").write_text("A=1\n")
    else:
        values = {"MINIO_PORT": "19999"}
    _project(compose_dir, **values).stack_for_reading()
    assert len(compose_calls) == 2


def test_a_referenced_process_variable_is_part_of_the_inputs(
    compose_calls: list[list[str]], compose_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (compose_dir / "compose.yaml").write_text("minio ${LH_CACHE_TEST_TAG:-x}\n")
    _project(compose_dir).stack_for_reading()
    monkeypatch.setenv("LH_CACHE_TEST_TAG", "2")
    _project(compose_dir).stack_for_reading()
    assert len(compose_calls) == 2


def test_a_deploy_reads_afresh_even_after_a_snapshot_used_the_saved_copy(
    compose_calls: list[list[str]], compose_dir: Path
) -> None:
    _project(compose_dir).compose.config()
    project = _project(compose_dir)
    project.stack_for_reading()
    assert len(compose_calls) == 1
    config = project.compose.config()
    assert len(compose_calls) == 2
    password = project.env.values["MINIO_ROOT_PASSWORD"]
    assert config["services"]["minio"]["environment"]["PASSWORD"] == password
