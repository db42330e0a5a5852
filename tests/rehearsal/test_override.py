"""compose/rehearsal.yaml: generated, complete, and keeping everything but the images."""

from __future__ import annotations

import json
import subprocess

import pytest

from lakehouse_tasks.rehearsal import (
    OVERRIDE_PATH,
    PROXY_OVERRIDE_PATH,
    SERVICE_STANDINS,
    render_override,
)
from tests.conftest import REPO


def test_override_files_are_generated_from_the_stand_in_table() -> None:
    assert OVERRIDE_PATH.read_text() == render_override(), (
        "compose/rehearsal.yaml is stale: run `python -m lakehouse_tasks.rehearsal override`"
    )
    assert PROXY_OVERRIDE_PATH.read_text() == render_override(optional=True)


def merged(env: str, rehearsal: bool) -> dict:
    files = ["compose/docker-compose.yaml", f"compose/docker-compose.override.{env}.yaml"]
    if rehearsal:
        files.append("compose/rehearsal.yaml")
        if env != "dev":
            files.append("compose/rehearsal.proxy.yaml")
    cmd = ["docker", "compose", "--project-directory", str(REPO), "--env-file", f"env/{env}.env"]
    for f in files:
        cmd += ["-f", f]
    out = subprocess.run(
        [*cmd, "config", "--format", "json"], cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:
        pytest.fail(out.stderr)
    return json.loads(out.stdout)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_rehearsal_swaps_images_and_keeps_the_rest(env: str) -> None:
    real = merged(env, rehearsal=False)
    rehearsal = merged(env, rehearsal=True)
    assert set(real["services"]) == set(rehearsal["services"])
    for name, svc in rehearsal["services"].items():
        original = real["services"][name]
        assert svc["image"] == SERVICE_STANDINS[name]["image"], name
        assert "build" not in svc, name
        for key in (
            "deploy",
            "depends_on",
            "volumes",
            "restart",
            "logging",
            "ports",
            "networks",
            "healthcheck",
            "labels",
            "profiles",
        ):
            assert svc.get(key) == original.get(key), f"{name}: rehearsal changed {key}"
        assert svc["environment"]["STANDIN_FAULT"] == "none"
        for key, value in original.get("environment", {}).items():
            assert svc["environment"][key] == value, f"{name}: rehearsal changed env {key}"


@pytest.mark.engine
def test_rehearsal_build_task_reuses_cached_images(
    standin_images: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from invoke import Context

    from lakehouse_tasks.tasks.rehearsal import build

    build(Context(), json_=True)
    data = json.loads(capsys.readouterr().out)
    by_kind = {row["kind"]: row for row in data["images"]}
    assert set(by_kind) == {"busybox", "postgres"}
    for kind, row in by_kind.items():
        assert row["image"] == standin_images[kind]
        assert row["result"] == "cached"
