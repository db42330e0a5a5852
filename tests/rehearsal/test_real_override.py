"""compose/rehearsal.real*.yaml: generated, and for the real services only the image changes."""

from __future__ import annotations

import json
import subprocess

import pytest

from lakehouse_tasks.environment import load_environment
from lakehouse_tasks.rehearsal import SERVICE_STANDINS
from lakehouse_tasks.rehearsal_real import REAL_ENVIRONMENT, REAL_IMAGES, REAL_SERVICES
from lakehouse_tasks.rehearsal_real_override import (
    REAL_OVERRIDE_PATH,
    REAL_PROXY_OVERRIDE_PATH,
    render_real_override,
)
from tests.conftest import REPO


def test_real_override_is_generated() -> None:
    assert REAL_OVERRIDE_PATH.read_text() == render_real_override(), (
        "compose/rehearsal.real.yaml is stale: run `python -m lakehouse_tasks.rehearsal override`"
    )
    assert REAL_PROXY_OVERRIDE_PATH.read_text() == render_real_override(optional=True)


def merged(files: list[str], env: str = "dev") -> dict:
    cmd = ["docker", "compose", "--project-directory", str(REPO), "--env-file", f"env/{env}.env"]
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
            tuned = REAL_ENVIRONMENT.get(name, {})
            if tuned:  # only the named resource-tuning variables, nothing else of the env
                assert svc["environment"] == {**original["environment"], **tuned}, name
                changed.discard("environment")
            assert changed <= {"image", "build", "pull_policy"}, (name, changed)
        else:
            assert svc["image"] == SERVICE_STANDINS[name]["image"], name


def test_the_real_tls_proxy_keeps_prods_hardening_and_only_swaps_the_image() -> None:
    """prod on the real tier: tls-proxy runs Debian's nginx with prod's capabilities, read-only
    root, tmpfs, mounts, healthcheck and limits exactly as the real files give them."""
    base = ["compose/docker-compose.yaml", "compose/docker-compose.override.prod.yaml"]
    real = merged(base, "prod")["services"]["tls-proxy"]
    tier = merged([*base, "compose/rehearsal.real.yaml", "compose/rehearsal.real.proxy.yaml"],
                  "prod")["services"]["tls-proxy"]  # fmt: skip
    assert tier["image"] == f"{REAL_IMAGES['nginx']}:rehearsal"
    changed = {k for k in set(tier) | set(real) if tier.get(k) != real.get(k)}
    assert changed <= {"image", "build", "pull_policy"}, changed
    assert tier["cap_drop"] == ["ALL"] and tier["read_only"] is True


def test_the_real_tier_picks_the_real_proxy_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_REHEARSAL_TIER", "real")
    names = [f.name for f in load_environment("prod", root=REPO, strict=False)
             .compose_files(rehearsal=True)]  # fmt: skip
    assert names[-2:] == ["rehearsal.real.yaml", "rehearsal.real.proxy.yaml"]
    monkeypatch.setenv("LAKEHOUSE_REHEARSAL_TIER", "quick")
    names = [f.name for f in load_environment("prod", root=REPO, strict=False)
             .compose_files(rehearsal=True)]  # fmt: skip
    assert names[-2:] == ["rehearsal.yaml", "rehearsal.proxy.yaml"]


def test_real_images_install_the_versions_the_compose_files_pin() -> None:
    """The real tier runs the pinned software: Superset's and Airflow's versions are the
    compose files' image tags, Superset's drivers the derived image's, and every package of
    their pip sets is held at an exact version by the committed constraints files."""
    import re

    from lakehouse_tasks import rehearsal_real as rr

    compose = (REPO / "compose" / "docker-compose.yaml").read_text()
    assert "${SUPERSET_IMAGE:-lakehouse/superset:5.0.0-1}" in compose
    assert "${AIRFLOW_IMAGE:-apache/airflow:2.11.0}" in compose
    derived = (REPO / "compose" / "images" / "superset" / "Dockerfile").read_text()
    assert "ARG SUPERSET_BASE_IMAGE=apache/superset:5.0.0" in derived
    assert rr.SUPERSET_VERSION == "5.0.0" and rr.AIRFLOW_VERSION == "2.11.0"
    drivers = dict(re.findall(r"(psycopg2-binary|trino)==([\w.]+)", derived))
    assert drivers == {
        "psycopg2-binary": rr.SUPERSET_DRIVERS["PSYCOPG2_VERSION"],
        "trino": rr.SUPERSET_DRIVERS["TRINO_CLIENT_VERSION"],
    }
    for kind, top in (
        ("superset", {"apache-superset": "5.0.0", **drivers}),
        ("airflow", {"apache-airflow": "2.11.0"}),
    ):
        lines = [
            line
            for line in (REPO / "compose" / "standins" / kind / "constraints.txt")
            .read_text()
            .splitlines()
            if line and not line.startswith("#")
        ]
        pins = dict(line.split("==") for line in lines)
        assert all(re.fullmatch(r"[\w.+!-]+", v) for v in pins.values()), kind
        assert len(pins) == len(lines) > 100, kind  # one exact pin per line, a whole set
        for name, version in top.items():
            assert pins[name] == version, (kind, name)
