"""Reading CPU and memory from cgroup files: v1 and v2 layouts, both docker drivers, and the
fallback for containers whose files are elsewhere (the real files of running containers are
compared with `docker stats` in tests/engine/test_health_engine.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.engine import cgroups

CID = "a" * 64
OTHER = "b" * 64


def v2_tree(root: Path, cid: str, *, scope: bool = False, usage_us: int = 1000) -> Path:
    (root / "cgroup.controllers").write_text("cpu memory\n")
    path = (
        root / ("system.slice" if scope else "docker") / (f"docker-{cid}.scope" if scope else cid)
    )
    path.mkdir(parents=True, exist_ok=True)
    (path / "cpu.stat").write_text(f"usage_usec {usage_us}\nuser_usec 1\nsystem_usec 2\n")
    (path / "memory.current").write_text("1000000\n")
    (path / "memory.stat").write_text("anon 5\ninactive_file 250000\nactive_file 3\n")
    (path / "memory.max").write_text("max\n")
    return path


def v1_tree(root: Path, cid: str, *, usage_ns: int = 5_000_000) -> tuple[Path, Path]:
    cpu = root / "cpu,cpuacct" / "docker" / cid
    mem = root / "memory" / "docker" / cid
    cpu.mkdir(parents=True)
    mem.mkdir(parents=True)
    (cpu / "cpuacct.usage").write_text(f"{usage_ns}\n")
    (mem / "memory.usage_in_bytes").write_text("800\n")
    (mem / "memory.stat").write_text("cache 1\ntotal_inactive_file 300\n")
    (mem / "memory.limit_in_bytes").write_text("512\n")
    return cpu, mem


def test_v2_cgroupfs_and_systemd_drivers_are_found(tmp_path: Path) -> None:
    v2_tree(tmp_path, CID)
    v2_tree(tmp_path, OTHER, scope=True)
    assert cgroups.locate(CID, tmp_path) == cgroups.Cgroup(
        tmp_path / "docker" / CID, tmp_path / "docker" / CID, True
    )
    found = cgroups.locate(OTHER, tmp_path)
    assert found and found.cpu.name == f"docker-{OTHER}.scope"
    # a short id, or one with no files, is not guessed at
    assert cgroups.locate(CID[:12], tmp_path) is None
    assert cgroups.locate("c" * 64, tmp_path) is None


def test_v2_memory_follows_docker_stats_rules(tmp_path: Path) -> None:
    cg = cgroups.locate(CID, tmp_path) if v2_tree(tmp_path, CID) else None
    assert cg is not None
    reading = cgroups.read(cg)
    assert reading is not None
    assert reading.cpu_ns == 1_000_000
    assert reading.mem_used == 1_000_000 - 250_000  # without the inactive page cache
    assert reading.mem_limit == cgroups.host_memory()  # "max": the host's memory


def test_v1_layout_reads_cpuacct_and_memory(tmp_path: Path) -> None:
    v1_tree(tmp_path, CID)
    cg = cgroups.locate(CID, tmp_path)
    assert cg is not None and not cg.v2
    reading = cgroups.read(cg)
    assert reading is not None
    assert (reading.cpu_ns, reading.mem_used, reading.mem_limit) == (5_000_000, 500, 512)


def test_cpu_percent_is_cpu_time_over_wall_time() -> None:
    before = cgroups.Reading(cpu_ns=0, mem_used=None, mem_limit=None, at=10.0)
    after = cgroups.Reading(cpu_ns=750_000_000, mem_used=None, mem_limit=None, at=10.5)
    assert cgroups.cpu_percent(before, after) == 150.0  # 1.5 cores busy
    assert cgroups.cpu_percent(after, before) == 0.0  # a restart resets the counter


class FakeFallback:
    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = list(ids)
        self.cancelled = False

    def rows(self) -> list[dict[str, Any]]:
        return [{"ID": i, "cpu_percent": 1.0, "mem_used": 1, "mem_limit": 2} for i in self.ids]

    def cancel(self) -> None:
        self.cancelled = True


class Machine:
    """A scripted clock, and a container burning half a core: its counter moves with it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.calls: list[str] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.calls.append(f"sleep {seconds:.2f}")
        self.now += seconds

    def read(self, cg: cgroups.Cgroup) -> cgroups.Reading | None:
        self.calls.append("read")
        reading = cgroups.read(cg, clock=self.clock)
        if reading is None:
            return None
        return cgroups.Reading(int(self.now * 0.5e9), reading.mem_used, reading.mem_limit, self.now)


def test_sample_measures_a_window_and_hands_the_rest_to_the_fallback(tmp_path: Path) -> None:
    path = v2_tree(tmp_path, CID)
    machine = Machine()
    made: list[FakeFallback] = []

    def fallback(ids: Sequence[str]) -> FakeFallback:
        made.append(FakeFallback(ids))
        return made[-1]

    cgroups._previous.pop(CID, None)
    sample = cgroups.CgroupStatsSample(
        [CID, OTHER], fallback=fallback, root=tmp_path,
        reader=machine.read, clock=machine.clock, sleep=machine.sleep,
    )  # fmt: skip
    assert sample.missing == (OTHER,)
    assert made and made[0].ids == [OTHER]
    machine.now += 0.1  # the snapshot's other work
    rows = {r["ID"]: r for r in sample.rows()}
    # the window is made up to a quarter of a second, then read again: half a core
    assert machine.calls == ["read", "sleep 0.15", "read"]
    assert set(rows) == {CID, OTHER}
    assert rows[CID]["cpu_percent"] == 50.0
    assert rows[CID]["mem_used"] == 750_000
    assert rows[OTHER]["cpu_percent"] == 1.0  # the fallback's own figure
    (path / "cpu.stat").unlink()  # the container stopped: no row, no error
    assert [r["ID"] for r in cgroups.CgroupStatsSample([CID], root=tmp_path).rows()] == []


def test_watch_refresh_reads_once_using_the_previous_refresh(tmp_path: Path) -> None:
    v2_tree(tmp_path, CID)
    machine = Machine()
    cgroups._previous.pop(CID, None)
    opts: dict[str, Any] = {"root": tmp_path, "reader": machine.read, "clock": machine.clock,
                            "sleep": machine.sleep}  # fmt: skip
    cgroups.CgroupStatsSample([CID], **opts).rows()  # the first refresh: two readings
    machine.calls.clear()
    machine.now += 1.0  # a refresh later: one reading, no wait, the window since the last one
    (row,) = cgroups.CgroupStatsSample([CID], **opts).rows()
    assert machine.calls == ["read"]
    assert row["ID"] == CID and row["cpu_percent"] == 50.0


def test_switch_turns_direct_reading_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_CGROUP_STATS", "0")
    assert not cgroups.enabled()
    monkeypatch.delenv("LAKEHOUSE_CGROUP_STATS")
    assert cgroups.enabled()


def test_a_memory_limit_is_read_again_after_its_max_age(tmp_path: Path) -> None:
    _cpu, mem = v1_tree(tmp_path, CID)
    cg = cgroups.locate(CID, tmp_path)
    assert cg is not None
    now = [1000.0]
    first = cgroups.read(cg, clock=lambda: now[0])
    assert first is not None and first.mem_limit == 512
    (mem / "memory.limit_in_bytes").write_text("1024\n")  # docker update --memory
    (mem / "memory.usage_in_bytes").write_text("900\n")
    now[0] += 5
    kept = cgroups.read(cg, clock=lambda: now[0])
    assert kept is not None and kept.mem_limit == 512 and kept.mem_used == 600  # usage: fresh
    now[0] += cgroups.LIMIT_MAX_AGE_S
    later = cgroups.read(cg, clock=lambda: now[0])
    assert later is not None and later.mem_limit == 1024
