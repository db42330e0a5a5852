"""Which containers a watch refresh inspects again (the real engine: tests/engine/test_health_engine.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lakehouse_tasks.engine.inspect_cache import MAX_AGE_S, InspectCache, entry_key


def listed(cid: str, status: str, state: str = "running") -> dict[str, str]:
    return {"ID": cid, "State": state, "Status": status}


def inspected(cid: str, *, health: str | None = "healthy", interval_s: float = 10.0,
              state: str = "running") -> dict[str, Any]:  # fmt: skip
    data: dict[str, Any] = {"Id": cid, "State": {"Status": state}, "Config": {}}
    if health is not None:
        data["State"]["Health"] = {"Status": health}
        data["Config"]["Healthcheck"] = {"Interval": int(interval_s * 1e9)}
    return data


class Engine:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.asked: list[list[str]] = []

    def fetch(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        self.asked.append(list(ids))
        return [self.objects[i] for i in ids if i in self.objects]


def test_unchanged_healthy_containers_are_kept_until_their_interval() -> None:
    now = [100.0]
    cache = InspectCache(clock=lambda: now[0])
    engine = Engine()
    engine.objects = {"a": inspected("a"), "b": inspected("b", health=None)}
    rows = [listed("a", "Up 2 minutes (healthy)"), listed("b", "Up 2 minutes")]
    assert len(cache.inspect(rows, ["a", "b"], engine.fetch)) == 2
    now[0] += 5
    got = cache.inspect(rows, ["a", "b"], engine.fetch)
    assert cache.asked == ()
    assert {d["Id"] for d in got} == {"a", "b"} and len(engine.asked) == 1
    now[0] += 6  # a's healthcheck interval (10 s) has passed: its probe log may have moved
    cache.inspect(rows, ["a", "b"], engine.fetch)
    assert engine.asked[-1] == ["a"]
    now[0] += MAX_AGE_S  # b has no healthcheck: kept at most MAX_AGE_S
    cache.inspect(rows, ["a", "b"], engine.fetch)
    assert engine.asked[-1] == ["a", "b"]


def test_a_changed_list_entry_or_a_problem_is_always_asked_again() -> None:
    cache = InspectCache(clock=lambda: 0.0)
    engine = Engine()
    engine.objects = {"a": inspected("a"), "s": inspected("s", health="starting"),
                      "x": inspected("x", health=None, state="exited")}  # fmt: skip
    rows = [listed("a", "Up 2 minutes (healthy)"), listed("s", "Up 3 seconds (health: starting)"),
            listed("x", "Exited (1) 4 seconds ago", state="exited")]  # fmt: skip
    cache.inspect(rows, ["a", "s", "x"], engine.fetch)
    cache.inspect(rows, ["a", "s", "x"], engine.fetch)
    assert engine.asked[-1] == ["s", "x"]  # starting and exited: their details matter
    rows[0] = listed("a", "Up 1 second (healthy)")  # restarted: a new start
    cache.inspect(rows, ["a", "s", "x"], engine.fetch)
    assert engine.asked[-1] == ["a", "s", "x"]


def test_containers_gone_are_forgotten() -> None:
    cache = InspectCache(clock=lambda: 0.0)
    engine = Engine()
    engine.objects = {"a": inspected("a"), "b": inspected("b")}
    rows = [listed("a", "Up"), listed("b", "Up")]
    cache.inspect(rows, ["a", "b"], engine.fetch)
    assert [d["Id"] for d in cache.inspect(rows[:1], ["a"], engine.fetch)] == ["a"]
    engine.objects["b"] = inspected("b", health="unhealthy")
    got = cache.inspect(rows, ["a", "b"], engine.fetch)
    assert engine.asked[-1] == ["b"]  # b was forgotten, so it is asked afresh
    assert {d["Id"]: d["State"]["Health"]["Status"] for d in got}["b"] == "unhealthy"


def test_a_young_container_is_kept_while_its_uptime_ticks() -> None:
    now = [0.0]
    cache = InspectCache(clock=lambda: now[0])
    engine = Engine()
    engine.objects = {"a": inspected("a", interval_s=30.0)}
    cache.inspect([listed("a", "Up 5 seconds (healthy)")], ["a"], engine.fetch)
    for seconds in range(6, 20):  # "Up 6 seconds", "Up 7 seconds", ...: the same container
        now[0] += 1
        cache.inspect([listed("a", f"Up {seconds} seconds (healthy)")], ["a"], engine.fetch)
    assert engine.asked == [["a"]]
    now[0] += 1  # ... but "(unhealthy)" after the uptime is a new verdict
    cache.inspect([listed("a", "Up 20 seconds (unhealthy)")], ["a"], engine.fetch)
    assert engine.asked[-1] == ["a"]


def test_a_restart_between_two_refreshes_is_asked_again() -> None:
    now = [0.0]
    cache = InspectCache(clock=lambda: now[0])
    engine = Engine()
    engine.objects = {"b": inspected("b", health=None)}  # no healthcheck: nothing else moves
    cache.inspect([listed("b", "Up 3 minutes")], ["b"], engine.fetch)
    now[0] += 5
    cache.inspect([listed("b", "Up 3 minutes")], ["b"], engine.fetch)
    assert cache.asked == ()
    now[0] += 5  # restarted 4 s ago: 3 minutes 10 s expected, 4 seconds listed
    cache.inspect([listed("b", "Up 4 seconds")], ["b"], engine.fetch)
    assert cache.asked == ("b",)
    now[0] += 20  # restarted again 3 s ago, within the seconds the kept entry counted
    cache.inspect([listed("b", "Up 3 seconds")], ["b"], engine.fetch)
    assert cache.asked == ("b",)
    now[0] += 1  # an unknown wording is compared whole: a change is a change
    cache.inspect([listed("b", "Up forever")], ["b"], engine.fetch)
    assert cache.asked == ("b",)


def test_entry_keys_follow_dockers_durations() -> None:
    assert entry_key("running", "Up Less than a second") == (("running", "Up"), (0.0, 1.0))
    assert entry_key("running", "Up 1 second (health: starting)") == (
        ("running", "Up (health: starting)"),
        (1.0, 2.0),
    )
    assert entry_key("running", "Up About a minute (healthy)")[1] == (60.0, 120.0)
    assert entry_key("running", "Up 7 minutes (Paused)") == (
        ("running", "Up (Paused)"),
        (420.0, 480.0),
    )
    assert entry_key("running", "Up About an hour")[1] == (3600.0, 7200.0)
    assert entry_key("running", "Up 3 days")[1][1] == float("inf")
    assert entry_key("exited", "Exited (0) 4 seconds ago") == (
        ("exited", "Exited (0) 4 seconds ago"),
        None,
    )
