"""What a deploy would recreate and why, from recorded container states (no engine)."""

from __future__ import annotations

from lakehouse_tasks.backends.compose.upgrade import (
    CONFIG_HASH_LABEL,
    ServiceChange,
    compare_containers,
    diff_services,
    parse_config_hashes,
    rolling_groups,
)
from lakehouse_tasks.engine.containers import ContainerState


def _state(
    service: str, *, hash_: str, image: str = "img:1", image_id: str = "sha256:aaa"
) -> ContainerState:
    return ContainerState(
        id=f"id-{service}",
        name=f"p-{service}-1",
        service=service,
        status="running",
        health="healthy",
        exit_code=0,
        restart_count=0,
        image_id=image_id,
        image=image,
        labels={CONFIG_HASH_LABEL: hash_},
    )


def test_parse_config_hashes() -> None:
    assert parse_config_hashes("a 111\nb 222\n\n") == {"a": "111", "b": "222"}


def test_each_kind_of_change_is_named_with_its_reason() -> None:
    changes = diff_services(
        wanted=["same", "conf", "tag", "rebuilt", "new"],
        hashes={"same": "h1", "conf": "h2-new", "tag": "h3-new", "rebuilt": "h4", "new": "h5"},
        images={
            "same": "img:1",
            "conf": "img:1",
            "tag": "img:2",
            "rebuilt": "img:1",
            "new": "img:1",
        },
        image_ids={"img:1": "sha256:aaa", "img:2": "sha256:aaa"},
        containers=[
            _state("same", hash_="h1"),
            _state("conf", hash_="h2-old"),
            _state("tag", hash_="h3-old"),
            _state("rebuilt", hash_="h4", image_id="sha256:old"),
            _state("gone", hash_="h6"),
        ],
        known=["same", "conf", "tag", "rebuilt", "new"],
    )
    by = {c.service: c for c in changes}
    assert by["same"].action == "keep"
    assert by["conf"].action == "recreate"
    assert by["conf"].reasons == ("configuration changed (config hash h2-old -> h2-new)",)
    assert by["tag"].reasons == ("image img:1 -> img:2",)  # the new tag explains the new hash
    assert by["rebuilt"].action == "recreate" and "now has id" in by["rebuilt"].reasons[0]
    assert by["new"].action == "create"
    assert by["gone"].action == "remove" and "orphan" in by["gone"].reasons[0]


def test_workers_roll_only_when_more_than_one_changes() -> None:
    both = [
        ServiceChange("spark-worker-1", "recreate"),
        ServiceChange("spark-worker-2", "recreate"),
    ]
    active = ["spark-worker-1", "spark-worker-2", "trino"]
    assert rolling_groups(both, active) == (("spark-worker-1", "spark-worker-2"),)
    one = [ServiceChange("spark-worker-1", "recreate"), ServiceChange("spark-worker-2", "keep")]
    assert rolling_groups(one, active) == ()
    assert rolling_groups(both, ["spark-worker-1"]) == ()  # dev runs one worker


def test_compare_containers_reports_recreated_created_removed() -> None:
    before = {"a": "1", "b": "2", "c": "3"}
    after = {"a": "1", "b": "9", "d": "4"}
    assert compare_containers(before, after) == {
        "recreated": ["b"],
        "created": ["d"],
        "removed": ["c"],
    }
