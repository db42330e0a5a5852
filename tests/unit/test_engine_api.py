"""The engine API stats client's arithmetic and its choice of socket (the requests themselves
run against the real engine in tests/engine/test_health_engine.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lakehouse_tasks.engine import api as engine_api
from lakehouse_tasks.engine.api import CpuSample, cpu_percent, memory_used


def raw(total: int, system: int, *, online: int = 2) -> dict[str, object]:
    return {"cpu_stats": {"cpu_usage": {"total_usage": total}, "system_cpu_usage": system,
                          "online_cpus": online}}  # fmt: skip


def test_cpu_percent_is_docker_stats_formula() -> None:
    before = CpuSample.of(raw(1_000, 10_000), 1.0)
    after = CpuSample.of(raw(1_500, 12_000), 2.0)
    assert before and after
    # (500 / 2000) * 2 CPUs * 100
    assert cpu_percent(before, after) == 50.0
    assert cpu_percent(after, before) == 0.0  # counters going back (a restart): no figure


def test_cpu_sample_counts_percpu_when_online_is_missing() -> None:
    data = {"cpu_stats": {"cpu_usage": {"total_usage": 5, "percpu_usage": [1, 2, 2]},
                          "system_cpu_usage": 9}}  # fmt: skip
    sample = CpuSample.of(data, 0.0)
    assert sample and sample.online == 3
    assert CpuSample.of({"cpu_stats": {}}, 0.0) is None


def test_memory_used_leaves_out_the_inactive_page_cache() -> None:
    v1 = {"memory_stats": {"usage": 100, "stats": {"total_inactive_file": 30}}}
    v2 = {"memory_stats": {"usage": 100, "stats": {"inactive_file": 40}}}
    assert memory_used(v1) == 70 and memory_used(v2) == 60
    assert memory_used({"memory_stats": {"usage": 10, "stats": {"inactive_file": 40}}}) == 10
    assert memory_used({"memory_stats": {}}) is None


def test_socket_only_for_a_local_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "docker.sock"
    sock.write_text("")
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "LAKEHOUSE_ENGINE_API"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    assert engine_api.socket_path(["docker"]) == str(sock)
    assert engine_api.socket_path(["docker", "--context", "remote"]) is None
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")
    assert engine_api.socket_path(["docker"]) is None
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'absent.sock'}")
    assert engine_api.socket_path(["docker"]) is None
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    monkeypatch.setenv("LAKEHOUSE_ENGINE_API", "0")
    assert engine_api.socket_path(["docker"]) is None


def test_a_context_chosen_with_docker_context_use_is_another_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "LAKEHOUSE_ENGINE_API"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert engine_api.local_socket() == engine_api.DEFAULT_SOCKET  # no config file
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"currentContext": "builder"}))
    assert engine_api.local_socket() is None
    config.write_text(json.dumps({"currentContext": "default", "auths": {}}))
    assert engine_api.local_socket() == engine_api.DEFAULT_SOCKET
    config.write_text("not json")
    assert engine_api.local_socket() == engine_api.DEFAULT_SOCKET
    config.write_text(json.dumps({"currentContext": "builder"}))
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other.sock")  # outranks the context
    assert engine_api.local_socket() == "/run/other.sock"


def test_previous_samples_survive_in_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "stats" / "p.json"
    engine_api._previous["abc"] = CpuSample(1, 2, 2, 3.0)
    engine_api._save_previous(state, ["abc", "gone"])
    assert json.loads(state.read_text()) == {"samples": {"abc": [1, 2, 2, 3.0]}}
    del engine_api._previous["abc"]
    engine_api._load_previous(state)
    assert engine_api._previous.pop("abc") == CpuSample(1, 2, 2, 3.0)
