"""The per-environment deploy lock: acquire, refuse, break stale, release, force."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lakehouse_tasks.lock import (
    LockHeldError,
    acquire,
    environment_lock,
    lock_path,
    lock_status,
    read_lock,
    release,
)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_acquire_writes_the_holder_as_json(root: Path) -> None:
    info = acquire(root, "dev", "invoke deploy --env dev")
    raw = json.loads(lock_path(root, "dev").read_text())
    assert raw["pid"] == os.getpid() == info.pid
    assert raw["command"] == "invoke deploy --env dev"
    assert {"host", "user", "time", "environment"} <= set(raw)
    assert lock_path(root, "dev") == root / "state" / "locks" / "dev.lock"


def test_second_acquire_is_refused_naming_the_holder_and_the_fix(root: Path) -> None:
    first = acquire(root, "dev", "invoke deploy")
    with pytest.raises(LockHeldError) as raised:
        acquire(root, "dev", "invoke deploy")
    message = raised.value.message
    assert raised.value.exit_code == 4
    assert f"{first.user}@{first.host} pid {first.pid}" in message
    assert "invoke lock.release --env dev" in message


def test_environments_lock_independently(root: Path) -> None:
    acquire(root, "dev", "a")
    acquire(root, "staging", "b")
    assert read_lock(root, "staging") is not None


def test_stale_lock_of_a_dead_process_is_broken_and_said_so(root: Path) -> None:
    pid = dead_pid()
    acquire(root, "dev", "crashed deploy", pid=pid)
    assert lock_status(root, "dev").state == "stale"
    said: list[str] = []
    info = acquire(root, "dev", "invoke deploy", notify=said.append)
    assert info.pid == os.getpid()
    assert len(said) == 1 and "stale lock" in said[0] and str(pid) in said[0]


def test_unreadable_lock_counts_as_stale(root: Path) -> None:
    path = lock_path(root, "dev")
    path.parent.mkdir(parents=True)
    path.write_text("{half a")
    said: list[str] = []
    acquire(root, "dev", "invoke deploy", notify=said.append)
    assert said


def test_lock_of_another_host_is_never_broken(root: Path) -> None:
    path = lock_path(root, "dev")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "user": "bob", "time": "t"}))
    assert lock_status(root, "dev").state == "held (other host)"
    with pytest.raises(LockHeldError):
        acquire(root, "dev", "invoke deploy")


def test_release_of_a_live_holder_needs_force(root: Path) -> None:
    live = subprocess.Popen(["sleep", "30"])
    try:
        acquire(root, "dev", "other deploy", pid=live.pid)
        with pytest.raises(LockHeldError) as raised:
            release(root, "dev")
        assert "--force" in raised.value.message
        assert lock_path(root, "dev").exists()
        removed = release(root, "dev", force=True)
        assert removed is not None and removed.pid == live.pid
        assert not lock_path(root, "dev").exists()
    finally:
        live.kill()
        live.wait()


def test_release_of_a_dead_holder_or_free_lock_needs_no_force(root: Path) -> None:
    assert release(root, "dev") is None
    acquire(root, "dev", "x", pid=dead_pid())
    assert release(root, "dev") is not None


def test_context_manager_releases_on_error(root: Path) -> None:
    with pytest.raises(RuntimeError), environment_lock(root, "dev", "invoke deploy"):
        assert lock_path(root, "dev").exists()
        raise RuntimeError("boom")
    assert not lock_path(root, "dev").exists()
