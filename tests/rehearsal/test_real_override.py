"""compose/rehearsal.real.yaml: generated, and for the real services only the image changes."""

from __future__ import annotations

import json
import subprocess

import pytest

from lakehouse_tasks.rehearsal import SERVICE_STANDINS
from lakehouse_tasks.rehearsal_real import (
    REAL_IMAGES,
    REAL_OVERRIDE_PATH,
    REAL_SERVICES,
    render_real_override,
)
from tests.conftest import REPO


def test_real_override_is_generated() -> None:
    assert REAL_OVERRIDE_PATH.read_text() == render_real_override(), (
        "compose/rehearsal.real.yaml is stale: run `python -m lakehouse_tasks.rehearsal override`"
    )


def merged(files: list[str]) -> dict:
    cmd = ["docker", "compose", "--project-directory", str(REPO), "--env-file", "env/dev.env"]
    for f in files:
        cmd += ["-f", f]
    out = subprocess.run(
        [*cmd, "config", "--format", "json"], cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:
        pytest.fail(out.stderr)
    return json.loads(out.stdout)


def test_real_services_keep_everything_of_the_real_files_but_the_image() -> None:
    base = ["compose/docker-compose.yaml", "compose/docker-compose.override.dev.yaml"]
    real = merged(base)["services"]
    tier = merged([*base, "compose/rehearsal.real.yaml"])["services"]
    assert set(real) == set(tier)
    for name, svc in tier.items():
        original = real[name]
        if name in REAL_SERVICES:
            assert svc["image"] == f"{REAL_IMAGES[REAL_SERVICES[name]]}:rehearsal", name
            assert "build" not in svc, name
            changed = {k for k in set(svc) | set(original) if svc.get(k) != original.get(k)}
            assert changed <= {"image", "build", "pull_policy"}, (name, changed)
        else:
            assert svc["image"] == SERVICE_STANDINS[name]["image"], name
