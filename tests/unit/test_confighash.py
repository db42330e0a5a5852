"""The tool's own config-hash label (lakehouse_tasks.confighash) and the plans built on it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lakehouse_tasks.upgrade import CONFIG_HASH_LABEL, diff_services

from lakehouse_tasks.confighash import (
    INPUTS_KEY,
    LABEL,
    labels_file,
    service_hash,
    service_hashes,
    write_labels,
)
from lakehouse_tasks.engine.containers import ContainerState


def _container(service: str, labels: dict[str, str]) -> ContainerState:
    return ContainerState(
        id=f"id-{service}",
        name=f"p-{service}-1",
        service=service,
        status="running",
        health="healthy",
        exit_code=0,
        restart_count=0,
        image_id="sha256:a",
        image="img:1",
        labels=labels,
    )


def test_the_hash_ignores_its_own_label_and_nothing_else() -> None:
    service = {"image": "img:1", "environment": {"A": "1"}, "labels": {"io.lakehouse.layer": "1"}}
    stamped = {**service, "labels": {**service["labels"], LABEL: "whatever"}}
    assert service_hash(service) == service_hash(stamped)
    assert service_hash(service) != service_hash({**service, "environment": {"A": "2"}})
    assert service_hash({"image": "x"}) == service_hash({"image": "x", "labels": {LABEL: "y"}})


def test_the_label_file_is_rewritten_only_when_a_hash_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    path = labels_file(tmp_path, "p", "inputs-1")
    assert json.loads(path.read_text()) == {INPUTS_KEY: "inputs-1", "services": {}}
    assert write_labels(path, {"a": "h1"}) is True
    mtime = path.stat().st_mtime_ns
    assert write_labels(path, {"a": "h1"}) is False and path.stat().st_mtime_ns == mtime
    document = json.loads(path.read_text())
    assert document["services"] == {"a": {"labels": {LABEL: "h1"}}}
    assert document[INPUTS_KEY] == "inputs-1"
    # Other files or profiles: the services it names may not exist there, so it starts empty.
    assert labels_file(tmp_path, "p", "inputs-2") == path
    assert json.loads(path.read_text())["services"] == {}
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert os.access(path, os.R_OK)


def test_plans_compare_the_tools_label_and_ignore_a_lying_compose_hash() -> None:
    config = {
        "services": {"a": {"image": "img:1"}, "b": {"image": "img:1", "environment": {"X": "2"}}}
    }
    ours = service_hashes(config)
    containers = [
        # compose's label disagrees with `config --hash` (compose#9211), ours agrees: keep
        _container("a", {CONFIG_HASH_LABEL: "compose-label", LABEL: ours["a"]}),
        # ours differs: the configuration really changed
        _container("b", {CONFIG_HASH_LABEL: "same", LABEL: "0ld"}),
    ]
    changes = {
        c.service: c
        for c in diff_services(
            wanted=["a", "b"],
            hashes={"a": "compose-config-hash", "b": "same"},
            images={"a": "img:1", "b": "img:1"},
            image_ids={},
            containers=containers,
            tool_hashes=ours,
        )
    }
    assert changes["a"].action == "keep"
    assert changes["b"].action == "recreate"
    assert "tool config hash" in changes["b"].reasons[0]


def test_containers_without_the_tools_label_fall_back_to_composes() -> None:
    containers = [_container("a", {CONFIG_HASH_LABEL: "h-old"})]
    (change,) = diff_services(
        wanted=["a"],
        hashes={"a": "h-new"},
        images={"a": "img:1"},
        image_ids={},
        containers=containers,
        tool_hashes={"a": "t"},
    )
    assert change.action == "recreate" and "config hash h-old" in change.reasons[0]
