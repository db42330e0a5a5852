"""The first run against the real engine: without a registry, the real images are missing and
preflight names them and offers the offline rehearsal (issue 14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVOKE = str(Path(sys.executable).parent / "invoke")

pytestmark = pytest.mark.engine


def test_preflight_names_the_missing_images_and_offers_the_rehearsal(docker_engine: str) -> None:
    proc = subprocess.run(
        [INVOKE, "preflight", "--env", "dev", "--json"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "LAKEHOUSE_REHEARSAL"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    missing = [
        c for c in report["checks"] if c["name"].startswith("image ") and c["status"] == "fail"
    ]
    if not missing:
        pytest.skip("every real image is present on this machine")
    assert proc.returncode == 3
    for check in missing:
        assert check["detail"].startswith("not present locally; needed by ")
        assert "--rehearsal" in check["hint"], check
    assert "image apache/airflow:2.11.0" in {c["name"] for c in missing}
    assert "image apache/airflow:2.11.0" in proc.stderr  # the closing sentence names it
    rehearsal = subprocess.run(
        [INVOKE, "preflight", "--env", "dev", "--rehearsal", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    checks = json.loads(rehearsal.stdout)["checks"]
    assert not [c for c in checks if c["name"].startswith("image ") and c["status"] == "fail"]
