"""Deploy history: append, list newest first, choose what rollback returns to."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from lakehouse_tasks import history
from lakehouse_tasks.errors import LakehouseError
from lakehouse_tasks.history import DeployRecord


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def record(ident: str, config_hash: str = "h1", image: str = "sha256:a") -> DeployRecord:
    return DeployRecord(
        id=ident,
        environment="dev",
        time="2025-01-01T00:00:00+00:00",
        kind="deploy",
        config_hash=config_hash,
        project_name="lakehouse-dev",
        services=("minio",),
        images={"minio": image},
    )


def test_append_writes_a_json_line_and_a_private_config_file(root: Path) -> None:
    config = {"services": {"minio": {"environment": {"MINIO_ROOT_PASSWORD": "s3cret-value"}}}}
    path = history.append(root, record("r1"), config)
    line = (root / "state" / "history" / "dev.jsonl").read_text().strip()
    assert json.loads(line)["id"] == "r1"
    assert "s3cret-value" not in line  # the secret lives only in the 0600 config file
    assert json.loads(path.read_text()) == config
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_load_round_trips_and_skips_broken_lines(root: Path) -> None:
    history.append(root, record("r1"), {})
    with (root / "state" / "history" / "dev.jsonl").open("a") as fh:
        fh.write("not json\n")
    history.append(root, record("r2", "h2"), {})
    loaded = history.load(root, "dev")
    assert [r.id for r in loaded] == ["r1", "r2"]
    assert loaded[0] == record("r1")
    assert history.load(root, "prod") == []


def test_listing_is_newest_first_with_the_current_one_marked() -> None:
    rows = history.listing([record("r1"), record("r2", "h2")])
    assert [(r["id"], r["current"]) for r in rows] == [("r2", True), ("r1", False)]


def test_previous_skips_identical_redeploys() -> None:
    records = [record("r1", "h1"), record("r2", "h2"), record("r3", "h2")]
    assert history.select_previous(records).id == "r1"


def test_previous_counts_a_new_image_as_a_difference() -> None:
    records = [record("r1", "h1", "sha256:a"), record("r2", "h1", "sha256:b")]
    assert history.select_previous(records).id == "r1"


def test_previous_with_to_accepts_an_id_prefix() -> None:
    records = [record("20250101-a"), record("20250102-b", "h2")]
    assert history.select_previous(records, "20250101").id == "20250101-a"
    with pytest.raises(LakehouseError) as raised:
        history.select_previous(records, "2025")
    assert "more than one" in raised.value.message


def test_nothing_to_roll_back_to_is_exit_4() -> None:
    with pytest.raises(LakehouseError) as raised:
        history.select_previous([record("r1")])
    assert raised.value.exit_code == 4
    with pytest.raises(LakehouseError):
        history.select_previous([])


def test_new_ids_are_unique_and_sortable() -> None:
    first = history.new_id([], "abcdef1234", "2025-03-04T05:06:07+00:00")
    assert first == "20250304-050607-abcdef12"
    second = history.new_id([record(first)], "abcdef1234", "2025-03-04T05:06:07+00:00")
    assert second == f"{first}-2"


def test_git_commit_outside_a_repository_is_none(tmp_path: Path) -> None:
    assert history.git_commit(tmp_path) is None
