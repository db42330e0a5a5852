"""The benchmark suite: each figure of docs/PERFORMANCE.md against the raw docker command.

Run it as ``invoke bench`` (or ``python -m bench.run``). Every figure interleaves the tool and
the raw command run by run, so the ratio of one run compares two measurements taken seconds
apart under the same machine load; the figure is the median of those per-run ratios, with
their min and max. Progress goes to stderr, the table (or ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import stacks
from .stats import Figure, machine_info, ratios, result_document, results_table, summarize

#: Figure groups ``--only`` accepts, in the order they run.
GROUPS = ("startup", "health", "memory", "serve", "deploy", "backup", "volume", "offsite")

#: Seconds between two refreshes of `invoke serve` (its default): a day is 17280 of them.
SERVE_INTERVAL_S = 5

HEALTH_SIZES = (16, 64, 256)
QUICK_SIZES = (16, 256)
#: Refreshes of the `health --watch 1` CPU figure (at the largest size).
WATCH_REFRESHES = 30
QUICK_WATCH_REFRESHES = 12

#: Idle time before each timed snapshot with resources (not counted). The engine's answer to
#: `docker stats --no-stream` depends on how long ago the last stats request ended: measured
#: on 16 containers, 2.6 s when the engine had been idle for 0.5 s or more, 1.9-2.1 s right
#: after another one. Back to back, whichever side ran second in a pair was served faster
#: (per-run ratios alternated 0.91/1.08 with the order). A snapshot a user asks for meets an
#: idle engine, so both sides get one.
STATS_IDLE_S = 1.5


@dataclass(frozen=True)
class Settings:
    """How much to measure: ``quick`` shrinks data sizes and run counts (docs/PERFORMANCE.md)."""

    runs: int  # runs of the cheap figures (start-up, health)
    heavy_runs: int  # runs of deploy, backup and restore
    data_bytes: int  # size of the volume and of the database backed up
    refreshes: int  # health --watch refreshes for the memory figure
    serve_refreshes: int = 17280  # invoke serve refreshes: a day at one every 5 s
    sizes: tuple[int, ...] = HEALTH_SIZES
    watch_refreshes: int = WATCH_REFRESHES

    @classmethod
    def make(cls, *, quick: bool, runs: int | None = None) -> Settings:
        if quick:
            return cls(
                runs=runs or 3,
                heavy_runs=max(1, min(runs or 2, 2)),
                data_bytes=100 * 1024**2,
                refreshes=200,
                sizes=QUICK_SIZES,
                watch_refreshes=QUICK_WATCH_REFRESHES,
                serve_refreshes=2880,  # four hours
            )
        return cls(
            runs=runs or 7,
            heavy_runs=max(1, min(runs or 3, 5)),
            data_bytes=1024**3,
            refreshes=1000,
        )


def log(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


#: 1-minute load averages sampled at every timed command since the last figure was made.
_LOADS: list[float] = []


def sample_load() -> None:
    with contextlib.suppress(OSError):
        _LOADS.append(os.getloadavg()[0])


def take_loads() -> list[float]:
    found = list(_LOADS)
    _LOADS.clear()
    return found


def timed_run(
    argv: Sequence[str] | str,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    shell: bool = False,
    ok_codes: Sequence[int] = (0,),
) -> float:
    """Wall-clock seconds of one command; a failure stops the figure with its stderr."""
    sample_load()
    started = time.perf_counter()
    proc = subprocess.run(
        argv if not shell else ["bash", "-o", "pipefail", "-c", str(argv)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    elapsed = time.perf_counter() - started
    if proc.returncode not in ok_codes:
        shown = argv if isinstance(argv, str) else shlex.join(argv)
        raise RuntimeError(
            f"{shown} exited {proc.returncode}: {proc.stderr.strip()[-1500:] or proc.stdout[-500:]}"
        )
    return elapsed


def capture(argv: Sequence[str], **kw: Any) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=600, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}: {proc.stderr[-1500:]}")
    return proc.stdout


def process_cpu_s(pid: int) -> float:
    """CPU seconds a running process and its waited-for children have used (``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc/self/status``)."""
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def compose_ps_ids(output: str) -> list[str]:
    """Container ids from ``docker compose ps --format json`` (an array, or one object a line,
    depending on the compose version)."""
    text = output.strip()
    if not text:
        return []
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [str(r["ID"]) for r in rows if r.get("ID")]


def figure_from_pairs(
    fid: str,
    title: str,
    compared_with: str,
    target: float,
    tool: Sequence[float],
    raw: Sequence[float],
    *,
    throughput_bytes: int | None = None,
    **extra: Any,
) -> Figure:
    """A ratio figure from interleaved timings. With ``throughput_bytes`` the figure is the
    throughput ratio (raw time / tool time, target ``>=``) and tool/raw are shown in MB/s.
    Every figure records how many pairs each side won and the load average of its runs."""
    loads = take_loads()
    extra = {
        "pairs": len(tool),
        "pairs_won_by_tool": sum(1 for t, r in zip(tool, raw, strict=True) if t < r),
        "pairs_won_by_raw": sum(1 for t, r in zip(tool, raw, strict=True) if t >= r),
        **({"load_average": summarize(loads)} if loads else {}),
        **extra,
    }
    if throughput_bytes:
        per_run = [r / t for t, r in zip(tool, raw, strict=True)]
        mb = throughput_bytes / 1e6
        return Figure(
            id=fid,
            title=title,
            compared_with=compared_with,
            target_kind="min_ratio",
            target=target,
            value=summarize(per_run),
            tool=summarize([mb / t for t in tool]),
            raw=summarize([mb / r for r in raw]),
            extra={"tool_seconds": summarize(tool), "raw_seconds": summarize(raw), **extra},
        )
    return Figure(
        id=fid,
        title=title,
        compared_with=compared_with,
        target_kind="max_ratio",
        target=target,
        value=summarize(ratios(tool, raw)),
        tool=summarize(tool),
        raw=summarize(raw),
        extra=dict(extra),
    )


class Suite:
    def __init__(self, root: Path, settings: Settings, workdir: Path) -> None:
        self.root = root
        self.settings = settings
        self.workdir = workdir
        self.state_dir = workdir / "state"
        self.environ = stacks.bench_environ(self.state_dir)
        bindir = Path(sys.executable).parent
        self.lakehouse = str(bindir / "lakehouse")
        self.invoke = str(bindir / "invoke")
        self.figures: list[Figure] = []
        self._projects: list[str] = []
        os.environ["LAKEHOUSE_STATE_DIR"] = str(self.state_dir)

    # ---- helpers ------------------------------------------------------------------------
    def quiet_output(self) -> Any:
        from lakehouse_tasks.ui import Output

        sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the Output
        return Output(stdout=sink, stderr=sink)

    @contextlib.contextmanager
    def project_named(self, hint: str) -> Iterator[str]:
        name = stacks.project_name(hint)
        self._projects.append(name)
        try:
            yield name
        finally:
            stacks.remove_project(name)

    def cleanup(self) -> None:
        for name in self._projects:
            stacks.remove_project(name)

    # ---- CLI start-up -------------------------------------------------------------------
    def startup(self) -> None:
        empty = self.workdir / "empty-tasks"
        empty.mkdir(exist_ok=True)
        (empty / "tasks.py").write_text("")
        raw = [self.invoke, "--list"]
        commands = {
            "lakehouse": [self.lakehouse, "--help"],
            "invoke": [self.invoke, "--list"],
        }
        # ``invoke --list`` exits 1 on a tasks file without tasks ("No tasks found").
        raw_ok = (0, 1)
        for argv in (raw, *commands.values()):  # warm the page cache
            timed_run(
                argv, cwd=empty if argv is raw else self.root, env=self.environ, ok_codes=raw_ok
            )
        times: dict[str, list[float]] = {"raw": [], **{k: [] for k in commands}}
        for i in range(self.settings.runs):
            order = ["raw", *commands] if i % 2 == 0 else [*commands, "raw"]
            for key in order:
                argv = raw if key == "raw" else commands[key]
                cwd = empty if key == "raw" else self.root
                codes = raw_ok if key == "raw" else (0,)
                times[key].append(timed_run(argv, cwd=cwd, env=self.environ, ok_codes=codes))
        log(f"start-up: {json.dumps({k: round(min(v), 3) for k, v in times.items()})}")
        for key, argv in commands.items():
            self.figures.append(
                figure_from_pairs(
                    f"startup-{key}",
                    f"CLI start-up: `{shlex.join([Path(argv[0]).name, *argv[1:]])}`",
                    "`invoke --list` on an empty tasks file",
                    1.2,
                    times[key],
                    times["raw"],
                )
            )

    # ---- health snapshots on generated stacks -------------------------------------------
    def _start_generated(self, size: int, name: str) -> Path:
        stack_file = stacks.write_generated_stack(self.workdir / "stacks", size)
        argv = stacks.compose_argv(stack_file, name)
        capture([*argv, "up", "-d", "--quiet-pull"])
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if len(compose_ps_ids(capture([*argv, "ps", "--format", "json"]))) >= size:
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"the generated {size}-service stack did not start in 300 s")
        return stack_file

    def _project_home(self, stack_file: Path, name: str) -> Path:
        """A project directory whose compose file is the generated stack (the checkout's
        environments, project name ``name``): what ``LAKEHOUSE_HOME`` points the CLI at."""
        home = self.workdir / "homes" / name
        (home / "compose").mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.root / "env", home / "env", dirs_exist_ok=True)
        (home / "env" / "dev.local.env").write_text(f"COMPOSE_PROJECT_NAME={name}\n")
        shutil.copyfile(stack_file, home / "compose" / "docker-compose.yaml")
        return home

    def _tool_argv(self, *, resources: bool) -> list[str]:
        return [self.lakehouse, "health", "--env", "dev", "--json"] + (
            [] if resources else ["--no-resources"]
        )

    def _tool_snapshot(
        self, home: Path, name: str, *, resources: bool, warm: bool = False
    ) -> float:
        """One ``lakehouse health --env dev --json`` as a new process (start-up, environment,
        plugins, rendering included). ``warm``: the CPU baseline the previous snapshot left
        in the state dir is kept (a repeated probe); otherwise removed (a first snapshot)."""
        if not warm:
            (self.state_dir / "stats" / f"{name}.json").unlink(missing_ok=True)
        if resources:
            time.sleep(STATS_IDLE_S)
        env = dict(self.environ, LAKEHOUSE_HOME=str(home))
        # exit 1: a stand-in still starting, or a plugin's service not in the generated stack
        return timed_run(self._tool_argv(resources=resources), cwd=home, env=env, ok_codes=(0, 1))

    @staticmethod
    def _raw_snapshot(stack_file: Path, name: str, *, resources: bool) -> float:
        argv = stacks.compose_argv(stack_file, name)
        if resources:
            time.sleep(STATS_IDLE_S)
        sample_load()
        started = time.perf_counter()
        out = capture([*argv, "ps", "--format", "json"])
        if resources:
            capture(["docker", "stats", "--no-stream", *compose_ps_ids(out)])
        return time.perf_counter() - started

    def _snapshot_calls(self, stack_file: Path, name: str, *, resources: bool) -> int:
        """Docker CLI calls of one in-process snapshot (the count must not grow with size)."""
        from lakehouse_tasks.engine import executor
        from lakehouse_tasks.health import take_snapshot

        before = len(executor.CALLS)
        take_snapshot(stacks.open_generated(self.root, stack_file, name), resources=resources)
        return len(executor.CALLS) - before

    def health(self, *, memory: bool) -> None:
        sizes = self.settings.sizes
        kinds = ("resources", "resources-warm", "no-resources")
        tool_t: dict[str, dict[int, list[float]]] = {k: {} for k in kinds}
        raw_t: dict[str, dict[int, list[float]]] = {k: {} for k in kinds}
        calls: dict[str, dict[int, int]] = {"resources": {}, "no-resources": {}}
        loads: dict[str, dict[int, list[float]]] = {k: {} for k in kinds}
        for size in sizes:
            with self.project_named(f"health{size}") as name:
                stack_file = self._start_generated(size, name)
                home = self._project_home(stack_file, name)
                log(f"health: {size} services up")
                # Warm-up, both sides and with resources: the first stats request on a fresh
                # stack is the slowest of all, and whichever side made it would pay for it.
                self._tool_snapshot(home, name, resources=True)
                self._raw_snapshot(stack_file, name, resources=True)
                for key in ("resources", "no-resources"):
                    calls[key][size] = self._snapshot_calls(
                        stack_file, name, resources=key == "resources"
                    )
                for k in kinds:
                    tool_t[k][size], raw_t[k][size] = [], []
                for i in range(self.settings.runs):
                    for k in kinds:
                        resources = k != "no-resources"
                        take_loads()

                        def tool(
                            k: str = k, resources: bool = resources, home: Path = home
                        ) -> float:
                            return self._tool_snapshot(
                                home, name, resources=resources, warm=k == "resources-warm"
                            )

                        def raw(
                            resources: bool = resources, stack_file: Path = stack_file
                        ) -> float:
                            return self._raw_snapshot(stack_file, name, resources=resources)

                        pair: list[tuple[list[float], Callable[[], float]]] = [
                            (tool_t[k][size], tool),
                            (raw_t[k][size], raw),
                        ]
                        for target, step in pair if i % 2 == 0 else pair[::-1]:
                            target.append(step())
                        loads[k].setdefault(size, []).extend(take_loads())
                log(
                    f"health {size}: "
                    + "; ".join(
                        f"{k} tool {min(tool_t[k][size]):.3f}s raw {min(raw_t[k][size]):.3f}s"
                        for k in kinds
                    )
                )
                if size == max(sizes):
                    self.watch_cpu(home, name, size)
                if memory and size == min(sizes):
                    self.memory(stack_file, name)
        titles = {
            "resources": (
                "health snapshot with resources, {n} services (`health --json`, a new "
                "process, first snapshot)",
                "`docker compose ps --format json` + one `docker stats --no-stream`",
                0.35,
            ),
            "resources-warm": (
                "health snapshot with resources, {n} services, repeated (CPU since the "
                "previous snapshot)",
                "`docker compose ps --format json` + one `docker stats --no-stream`",
                0.35,
            ),
            "no-resources": (
                "health snapshot without resources, {n} services (`health --json "
                "--no-resources`, a new process)",
                "`docker compose ps --format json`",
                0.5,
            ),
        }
        for k, (title, compared, goal) in titles.items():
            for size in sizes:
                _LOADS[:] = loads[k].get(size, [])
                self.figures.append(
                    figure_from_pairs(
                        f"health-{k}-{size}",
                        title.format(n=size),
                        compared,
                        goal,
                        tool_t[k][size],
                        raw_t[k][size],
                        docker_calls=calls[
                            "no-resources" if k == "no-resources" else "resources"
                        ].get(size),
                    )
                )
        for key, per_size in calls.items():
            if len(set(per_size.values())) > 1:
                for f in self.figures:
                    if f.id.startswith(f"health-{key}"):
                        f.notes.append(f"docker calls differ between sizes: {per_size}")

    # ---- CPU of health --watch ------------------------------------------------------------
    def watch_cpu(self, home: Path, name: str, size: int) -> None:
        """``lakehouse health --watch 1 --json`` with resources as a new process: its CPU time
        and its children's (every docker command it runs), over its wall time, from its first
        refresh on (sustained: the start-up and the first snapshot, about 1 s of CPU at 256
        services, are reported beside it, as the whole run's share)."""
        refreshes = self.settings.watch_refreshes
        argv = [self.lakehouse, "health", "--env", "dev", "--json", "--watch", "1",
                "--count", str(refreshes)]  # fmt: skip
        env = dict(self.environ, LAKEHOUSE_HOME=str(home))
        take_loads()
        shares: list[float] = []
        whole: list[float] = []
        for _ in range(max(1, self.settings.heavy_runs)):
            sample_load()
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            assert proc.stdout is not None
            proc.stdout.readline()  # the first refresh is out
            first_at = time.perf_counter()
            first_cpu = process_cpu_s(proc.pid)
            for _line in proc.stdout:
                pass
            _pid, status, usage = os.wait4(proc.pid, 0)
            ended = time.perf_counter()
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode not in (0, 1):
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"{shlex.join(argv)} exited {proc.returncode}: {err[-800:]}")
            proc.stdout.close()
            if proc.stderr:
                proc.stderr.close()
            total = usage.ru_utime + usage.ru_stime
            shares.append((total - first_cpu) / (ended - first_at) * 100)
            whole.append(total / (ended - started) * 100)
            log(f"watch cpu {size}: {shares[-1]:.1f}% of a core after the first refresh, "
                f"{whole[-1]:.1f}% over the whole {ended - started:.1f}s")  # fmt: skip
        loads = take_loads()
        self.figures.append(
            Figure(
                id=f"watch-cpu-{size}",
                title=f"CPU of `health --watch 1` with resources at {size} services, sustained "
                f"({refreshes} refreshes; the process and the docker commands it runs, from "
                "its first refresh on)",
                compared_with="one core (absolute)",
                target_kind="max_value",
                target=10.0,
                unit="%",
                value=summarize(shares),
                extra={
                    "refreshes": refreshes,
                    "whole_run_percent": summarize(whole),
                    "load_average": summarize(loads),
                },
            )
        )

    # ---- memory of health --watch -------------------------------------------------------
    def memory(self, stack_file: Path, name: str) -> None:
        from lakehouse_tasks.tasks import health as health_tasks

        watch = health_tasks.watch_health

        project = stacks.open_generated(self.root, stack_file, name)
        out = self.quiet_output()
        out.json_mode = True
        samples: list[int] = []

        def after_refresh(_seconds: float) -> None:
            samples.append(rss_bytes())

        gc.collect()
        started = time.perf_counter()
        watch(
            project,
            out,
            interval=0.0,
            count=self.settings.refreshes,
            resources=False,
            services=[],
            detailed=False,
            sleep=after_refresh,
        )
        elapsed = time.perf_counter() - started
        samples.append(rss_bytes())
        growth = (samples[-1] - samples[0]) / 1e6
        log(f"memory: {len(samples)} refreshes, growth {growth:.2f} MB in {elapsed:.0f}s")
        self.figures.append(
            Figure(
                id="watch-memory",
                title=f"memory of `health --watch` over {self.settings.refreshes} refreshes",
                compared_with="its own RSS after the first refresh",
                target_kind="max_value",
                target=2.0,
                unit="MB",
                value=summarize([growth]),
                extra={
                    "rss_first_mb": samples[0] / 1e6,
                    "rss_last_mb": samples[-1] / 1e6,
                    "rss_max_mb": max(samples) / 1e6,
                    "refreshes": self.settings.refreshes,
                    "seconds": elapsed,
                    "services": len(stacks.generated_stack(min(self.settings.sizes))["services"]),
                },
            )
        )

    # ---- invoke serve --------------------------------------------------------------------
    def serve(self) -> None:
        """Memory of `invoke serve` over a day of refreshes, each with the requests of an open
        page (/api/status every refresh, the page itself and /metrics every minute).

        The first snapshot is a real one of a generated stack; each refresh after it is that
        snapshot with new CPU and memory figures and the clock five seconds on, so a day of
        refreshes runs in a minute or two (the docker calls of a snapshot are the health
        figures' business). The slow sections (deploys, backups, events, plugins) are read
        every 15 simulated seconds, as a real server reads them, from a state dir holding a
        busy day of events.
        """
        import asyncio
        import dataclasses
        import random

        from lakehouse_tasks.health import take_snapshot
        from lakehouse_tasks.serve.app import Refresher, create_app
        from lakehouse_tasks.serve.auth import Gate
        from lakehouse_tasks.serve.samples import SampleStore

        with self.project_named("serve") as name:
            stack_file = self._start_generated(min(self.settings.sizes), name)
            project = stacks.open_generated(self.root, stack_file, name)
            first = take_snapshot(project, resources=True)
        events = self.state_dir / "events.jsonl"
        events.parent.mkdir(parents=True, exist_ok=True)
        with events.open("a") as fh:
            for i in range(2000):
                at = first.time - _dt.timedelta(seconds=40 * i)
                fh.write(json.dumps({"kind": "service.restarted", "environment": "dev",
                    "service": "svc", "message": f"restarted {i}", "severity": "warning",
                    "time": at.isoformat()}) + "\n")  # fmt: skip
        rng = random.Random(20)
        step = {"n": 0}

        def take(_project: Any, **_kw: Any) -> Any:
            step["n"] += 1
            rows = tuple(
                dataclasses.replace(r, cpu_percent=rng.uniform(0, 50), mem_used=rng.randrange(1 << 20, 1 << 30))
                for r in first.rows
            )  # fmt: skip
            later = first.time + _dt.timedelta(seconds=SERVE_INTERVAL_S * step["n"])
            return dataclasses.replace(first, rows=rows, time=later)

        samples = SampleStore(self.state_dir / "serve" / f"{name}.samples.jsonl")
        # The refresher's clock is the simulated one: the slow sections are read every 15 s
        # of the simulated day, as a real server reads them.
        refresher = Refresher(
            project,
            samples,
            interval=SERVE_INTERVAL_S,
            take=take,
            clock=lambda: float(SERVE_INTERVAL_S * step["n"]),
        )
        app = create_app("dev", lambda: refresher.doc, Gate(None))

        async def get(path: str) -> int:
            status: dict[str, int] = {}
            body = bytearray()

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                elif message["type"] == "http.response.body":
                    body.extend(message.get("body", b""))

            scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
                     "query_string": b"", "headers": [], "scheme": "http", "http_version": "1.1",
                     "server": ("127.0.0.1", 8790), "client": ("127.0.0.1", 5000), "root_path": ""}  # fmt: skip
            await app(scope, receive, send)
            return status["code"]

        read_at: list[int] = []  # the refresh each RSS reading was taken at

        async def day() -> list[int]:
            rss: list[int] = []
            per_minute = 60 // SERVE_INTERVAL_S
            for i in range(self.settings.serve_refreshes):
                refresher.refresh()
                assert await get("/api/status") == 200
                if i % per_minute == 0:
                    assert await get("/") == 200
                    assert await get("/metrics") == 200
                if i == self.settings.serve_refreshes // 100 or i % 500 == 0:
                    gc.collect()
                    rss.append(rss_bytes())
                    read_at.append(i)
            gc.collect()
            rss.append(rss_bytes())
            read_at.append(self.settings.serve_refreshes)
            return rss

        started = time.perf_counter()
        rss = asyncio.run(day())
        elapsed = time.perf_counter() - started
        # Bounded means flat once the bounded parts are full: the plot samples (six hours at
        # one a minute), the events of the last day, the allocator's arenas. The figure is the
        # growth over the second half of the day; the whole day's growth (the buffers filling)
        # and the refresh after which RSS stayed within 0.1 MB of its final value are kept.
        baseline = rss[1] if len(rss) > 2 else rss[0]
        day_growth = (rss[-1] - baseline) / 1e6
        half = min(
            range(len(read_at)), key=lambda k: abs(read_at[k] - self.settings.serve_refreshes / 2)
        )
        growth = (rss[-1] - rss[half]) / 1e6
        flat_from = next(
            read_at[k] for k in range(len(rss)) if all(abs(r - rss[-1]) < 100_000 for r in rss[k:])
        )
        log(
            f"serve: {self.settings.serve_refreshes} refreshes, growth {growth:.2f} MB over the "
            f"second half ({day_growth:.2f} MB over the day, flat from refresh {flat_from}) "
            f"in {elapsed:.0f}s"
        )
        hours = self.settings.serve_refreshes * SERVE_INTERVAL_S / 3600
        self.figures.append(
            Figure(
                id="serve-memory",
                title=f"memory of `invoke serve` over {self.settings.serve_refreshes} refreshes "
                f"({hours:.0f} h at one every {SERVE_INTERVAL_S} s): growth over the second half",
                compared_with="its own RSS at the middle of the run",
                target_kind="max_value",
                target=1.0,
                unit="MB",
                value=summarize([growth]),
                extra={
                    "growth_whole_run_mb": day_growth,
                    "flat_from_refresh": flat_from,
                    "flat_from_hours": flat_from * SERVE_INTERVAL_S / 3600,
                    "rss_first_mb": rss[0] / 1e6,
                    "rss_last_mb": rss[-1] / 1e6,
                    "rss_max_mb": max(rss) / 1e6,
                    "refreshes": self.settings.serve_refreshes,
                    "seconds": elapsed,
                    "samples_kept": len(samples),
                    "rss_mb_series": [round(r / 1e6, 2) for r in rss],
                    "rss_at_refresh": read_at,
                    "services": len(first.rows),
                },
            )
        )

    # ---- deploy and preflight -----------------------------------------------------------
    def _rehearsal(self, name: str) -> tuple[Path, Any]:
        from lakehouse_tasks.project import open_project

        env_file = stacks.rehearsal_env_file(self.workdir / "env", self.root, name)
        project = open_project(
            "dev", rehearsal=True, env_files=[str(env_file)], strict=False, root=self.root
        )
        return env_file, project

    def deploy(self) -> None:
        from lakehouse_tasks.preflight import run_preflight
        from lakehouse_tasks.project import open_project

        tool_t: list[float] = []
        raw_t: list[float] = []
        preflight_t: list[float] = []
        with self.project_named("deploy") as name:
            env_file, project = self._rehearsal(name)
            compose = project.compose.compose_cmd
            tool = [
                self.lakehouse, "deploy", "--env", "dev", "--rehearsal", "--skip-backup",
                "--skip-preflight", "--env-file", str(env_file),
            ]  # fmt: skip
            raw = [*compose, "up", "-d", "--wait"]
            down = [*compose, "down", "-v", "--remove-orphans", "-t", "0"]
            for i in range(self.settings.heavy_runs):
                started = time.perf_counter()
                fresh = open_project(
                    "dev", rehearsal=True, env_files=[str(env_file)], strict=False, root=self.root
                )
                run_preflight(fresh)
                preflight_t.append(time.perf_counter() - started)
                order = [("tool", tool), ("raw", raw)]
                for key, argv in order if i % 2 == 0 else order[::-1]:
                    timed_run(down, env=self.environ)
                    elapsed = timed_run(argv, cwd=self.root, env=self.environ, timeout=900)
                    (tool_t if key == "tool" else raw_t).append(elapsed)
                log(f"deploy run {i + 1}: tool {tool_t[-1]:.1f}s raw {raw_t[-1]:.1f}s")
            timed_run(down, env=self.environ)
        self.figures.append(
            figure_from_pairs(
                "deploy",
                "deploy of the dev stack from nothing (`--skip-backup --skip-preflight`)",
                "`docker compose up -d --wait` on the same merged files",
                0.8,
                tool_t,
                raw_t,
            )
        )
        self.figures.append(
            Figure(
                id="preflight",
                title="preflight alone (fixed cost added to a deploy)",
                compared_with="nothing (absolute)",
                target_kind="max_value",
                target=0.5,
                unit="s",
                value=summarize(preflight_t),
            )
        )

    # ---- consistent backup of the whole stack ----------------------------------------------
    def consistent_backup(
        self,
        project: Any,
        env_file: Path,
        dest: Path,
        raw_dir: Path,
        db_bytes: int,
        vol_bytes: int,
    ) -> None:
        """``lakehouse backup.create`` of the whole dev stack (every database and volume, the
        volumes' users stopped while they are archived) as a new process, against what an
        operator scripts for the same consistent result: stop those users, ``pg_dump -Fc``
        each database, ``tar | gzip -1`` each volume, start them, one after the other. Wall
        time and downtime (the longest a stopped container was down, from the engine's own
        FinishedAt/StartedAt) of both."""
        from lakehouse_tasks.data import plan as data_plan

        selection = data_plan.plan(project)
        docker = [str(a) for a in project.compose.docker_cmd]
        from lakehouse_tasks.backends.compose import ComposeBackend
        from lakehouse_tasks.backends.compose.services import service_containers

        by_service = service_containers(project)
        users = sorted({s for key in selection.volumes for s in selection.users.get(key, ())})
        ids = [cid for s in users for cid in by_service.get(s, [])]
        q = shlex.quote
        steps = [f"{shlex.join(docker)} stop {' '.join(ids)} >/dev/null"] if ids else []
        for db in selection.databases:
            container = ComposeBackend().exec_target(project, db.service)
            steps.append(
                f"{shlex.join(docker)} exec {q(container)} pg_dump -Fc -U {q(db.user)} "
                f"-d {q(db.database)} > {q(str(raw_dir / (db.service + '.dump')))}"
            )
        for key, volume in selection.volumes.items():
            image = data_plan.tool_image(project, key)
            steps.append(
                f"{shlex.join(docker)} run --rm --network none --user 0:0 -v {q(volume)}:/v:ro "
                f"--entrypoint tar {q(image)} -C /v -cf - . | gzip -1 "
                f"> {q(str(raw_dir / (key + '.tar.gz')))}"
            )
        if ids:
            steps.append(f"{shlex.join(docker)} start {' '.join(ids)} >/dev/null")
        raw_script = " && ".join(steps)
        tool = [
            self.lakehouse, "backup.create", "--env", "dev", "--rehearsal", "--env-file",
            str(env_file), "--dest", str(dest), "--json",
        ]  # fmt: skip
        wall: dict[str, list[float]] = {"tool": [], "raw": []}
        down: dict[str, list[float]] = {"tool": [], "raw": []}
        take_loads()
        for i in range(self.settings.heavy_runs):
            order = ["tool", "raw"] if i % 2 == 0 else ["raw", "tool"]
            for side in order:
                if side == "tool":
                    elapsed = timed_run(tool, cwd=self.root, env=self.environ, timeout=1800)
                else:
                    elapsed = timed_run(raw_script, shell=True, env=self.environ, timeout=1800)
                wall[side].append(elapsed)
                down[side].append(_downtime(docker, ids) if ids else 0.0)
                shutil.rmtree(dest, ignore_errors=True)
                for leftover in raw_dir.glob("*"):
                    leftover.unlink()
            log(
                f"consistent backup run {i + 1}: tool {wall['tool'][-1]:.1f}s "
                f"(down {down['tool'][-1]:.1f}s), raw {wall['raw'][-1]:.1f}s "
                f"(down {down['raw'][-1]:.1f}s)"
            )
        loads = take_loads()
        what = (
            f"{len(selection.databases)} databases, {len(selection.volumes)} volumes, "
            f"{human(db_bytes)} of database and {human(vol_bytes)} of object data"
        )
        compared = (
            "stop the volumes' users, `pg_dump -Fc` each database, `tar | gzip -1` each volume, "
            "start, one after the other"
        )
        for kind, samples in (("wall", wall), ("downtime", down)):
            _LOADS[:] = loads
            self.figures.append(
                figure_from_pairs(
                    f"consistent-backup-{kind}",
                    f"consistent backup of the whole dev stack ({what}): "
                    + ("wall time" if kind == "wall" else "downtime of the stopped services"),
                    compared,
                    0.5,
                    samples["tool"],
                    samples["raw"],
                    stopped_services=users,
                )
            )

    # ---- backup and restore -------------------------------------------------------------
    def _fill(
        self, project: Any, volume: str, image: str, db: Any, container: str, *, database: bool
    ) -> int:
        size = self.settings.data_bytes
        mib = max(1, size // 1024**2)
        capture(
            [
                "docker", "run", "--rm", "--network", "none", "--user", "0:0",
                "-v", f"{volume}:/v", "--entrypoint", "sh", image, "-c",
                f"head -c {mib}m /dev/urandom > /v/bench.bin",
            ]
        )  # fmt: skip
        if not database:
            return 0
        rows = size // 170  # about 170 bytes per row on disk
        capture(
            [
                "docker", "exec", container, "psql", "-v", "ON_ERROR_STOP=1", "-q",
                "-U", db.user, "-d", db.database, "-c",
                "DROP TABLE IF EXISTS bench_fill; CREATE TABLE bench_fill AS SELECT g AS id, "
                "md5(g::text) AS a, md5((g+1)::text) AS b, md5((g+2)::text) AS c, "
                f"md5((g+3)::text) AS d FROM generate_series(1, {rows}) g",
            ]
        )  # fmt: skip
        return int(
            capture(
                [
                    "docker", "exec", container, "psql", "-tA", "-U", db.user, "-d", db.database,
                    "-c", f"SELECT pg_database_size('{db.database}')",
                ]
            ).strip()
        )  # fmt: skip

    def backup(self, parts: Sequence[str] = ("consistent", "volume", "db")) -> None:
        """The backup and restore rows of ``parts``: the consistent backup of the whole stack,
        the volume's and the database's own backup and restore."""
        from lakehouse_tasks.backends.compose import ComposeBackend
        from lakehouse_tasks.data import backup as data_backup
        from lakehouse_tasks.data import plan as data_plan
        from lakehouse_tasks.data import restore as restore_mod
        from lakehouse_tasks.data import store

        volume_key, db_service = "minio-data", "metastore-db"
        with self.project_named("backup") as name:
            env_file, project = self._rehearsal(name)
            compose = project.compose.compose_cmd
            capture([*compose, "up", "-d", "--wait"], cwd=self.root, env=self.environ)
            volume = project.stack.volumes[volume_key]
            image = data_plan.tool_image(project, volume_key)
            db = next(d for d in data_plan.databases(project) if d.service == db_service)
            container = ComposeBackend().exec_target(project, db_service)
            db_bytes = self._fill(project, volume, image, db, container, database="db" in parts)
            vol_bytes = self.settings.data_bytes
            log(f"backup: filled {vol_bytes / 1e6:.0f} MB volume, {db_bytes / 1e6:.0f} MB database")
            dest = self.workdir / "backups"
            raw_dir = self.workdir / "raw-backups"
            raw_dir.mkdir(parents=True, exist_ok=True)
            docker = [str(a) for a in project.compose.docker_cmd]
            gzip_level = data_backup.GZIP_LEVEL
            raw_archive = raw_dir / "volume.tar.gz"
            raw_dump = raw_dir / "db.dump"
            q = shlex.quote
            raw_cmds = {
                "backup-volume": (
                    f"{shlex.join(docker)} run --rm --network none --user 0:0 -v {q(volume)}:/v:ro "
                    f"--entrypoint tar {q(image)} -C /v -cf - . | gzip -{gzip_level} "
                    f"> {q(str(raw_archive))}"
                ),
                "backup-db": (
                    f"{shlex.join(docker)} exec {q(container)} pg_dump -Fc -U {q(db.user)} "
                    f"-d {q(db.database)} > {q(str(raw_dump))}"
                ),
                "restore-volume": (
                    f"{shlex.join(docker)} run --rm --network none --user 0:0 -v {q(volume)}:/v "
                    # busybox's find has no -delete: the same removal the tool makes
                    f"--entrypoint find {q(image)} /v -mindepth 1 -maxdepth 1 "
                    "-exec rm -rf {} + && "
                    f"gzip -dc {q(str(raw_archive))} | {shlex.join(docker)} run -i --rm "
                    f"--network none --user 0:0 -v {q(volume)}:/v --entrypoint tar {q(image)} "
                    "-C /v -xf -"
                ),
                "restore-db": (
                    f"{shlex.join(docker)} exec {q(container)} psql -q -v ON_ERROR_STOP=1 "
                    f"-U {q(db.user)} -d postgres -c {q(f'DROP DATABASE IF EXISTS {db.database} WITH (FORCE)')} && "
                    f"{shlex.join(docker)} exec {q(container)} psql -q -v ON_ERROR_STOP=1 "
                    f"-U {q(db.user)} -d postgres -c {q(f'CREATE DATABASE {db.database} OWNER {db.user}')} && "
                    f"{shlex.join(docker)} exec -i {q(container)} pg_restore -U {q(db.user)} "
                    f"-d {q(db.database)} --exit-on-error --single-transaction < {q(str(raw_dump))}"
                ),
            }
            out = self.quiet_output()
            times: dict[str, dict[str, list[float]]] = {
                k: {"tool": [], "raw": []} for k in raw_cmds
            }
            selectors = {
                what: key
                for what, key in (("volume", volume_key), ("db", db_service))
                if what in parts
            }
            loads: dict[str, list[float]] = {}
            if "consistent" in parts:
                self.consistent_backup(project, env_file, dest, raw_dir, db_bytes, vol_bytes)
            for i in range(self.settings.heavy_runs):
                for what, selector in selectors.items():
                    made: dict[str, Any] = {}

                    def tool_backup(selector: str = selector, made: dict[str, Any] = made) -> None:
                        made["manifest"] = data_backup.create_backup(
                            project, dest=dest, only=[selector], out=out
                        )

                    def tool_restore(selector: str = selector, made: dict[str, Any] = made) -> None:
                        info = store.find_backup(dest, made["manifest"].id)
                        restore_mod.restore_backup(
                            project, info, only=[selector], safety_backup=False, out=out
                        )

                    phases: tuple[tuple[str, Callable[[], None]], ...] = (
                        ("backup", tool_backup),
                        ("restore", tool_restore),
                    )
                    for phase, tool_fn in phases:
                        key = f"{phase}-{what}"

                        def run_tool(fn: Callable[[], None] = tool_fn) -> float:
                            started = time.perf_counter()
                            fn()
                            return time.perf_counter() - started

                        def run_raw(key: str = key) -> float:
                            return timed_run(raw_cmds[key], shell=True, env=self.environ)

                        pair: list[tuple[str, Callable[[], float]]] = [
                            ("tool", run_tool),
                            ("raw", run_raw),
                        ]
                        take_loads()
                        for side, fn in pair if i % 2 == 0 else pair[::-1]:
                            times[key][side].append(fn())
                        loads.setdefault(key, []).extend(take_loads())
                        log(
                            f"{key} run {i + 1}: tool {times[key]['tool'][-1]:.1f}s "
                            f"raw {times[key]['raw'][-1]:.1f}s"
                        )
                    shutil.rmtree(dest, ignore_errors=True)
        sizes = {"volume": vol_bytes, "db": db_bytes}
        labels = {
            "backup-volume": (
                f"backup of a {human(vol_bytes)} volume",
                f"`docker run ... tar -cf - | gzip -{gzip_level} > file`",
            ),
            "backup-db": (
                f"backup of a {human(db_bytes)} database",
                "`docker exec ... pg_dump -Fc > file`",
            ),
            "restore-volume": (
                f"restore of the {human(vol_bytes)} volume",
                "`find -exec rm -rf`, then `gzip -dc file | docker run -i ... tar -xf -`",
            ),
            "restore-db": (
                f"restore of the {human(db_bytes)} database",
                "`psql` drop/create, then `docker exec -i ... pg_restore --single-transaction`",
            ),
        }
        for key, (title, compared) in labels.items():
            if not times[key]["tool"]:
                continue  # a part not measured in this run
            _LOADS[:] = loads.get(key, [])
            self.figures.append(
                figure_from_pairs(
                    key,
                    title,
                    compared,
                    # restore of the database: at most 0.6x the raw time (issue 18)
                    round(1 / 0.6, 3) if key == "restore-db" else 0.9,
                    times[key]["tool"],
                    times[key]["raw"],
                    throughput_bytes=sizes[key.split("-")[1]],
                )
            )

    # ---- off-site copy (restic) -------------------------------------------------------------
    def offsite(self) -> None:
        """The plugin's off-site copy of one backup directory into a fresh restic repository
        against plain ``restic backup`` of the same files into another fresh one (both
        initialised outside the timing), sides alternating."""
        import types

        if not shutil.which("restic"):
            log("offsite: restic is not installed; skipped (scripts/docker-engine installs it)")
            return
        from lakehouse_offsite.plugin import copy_backup
        from lakehouse_offsite.restic import Restic, ResticConfig

        size = self.settings.data_bytes
        source = self.workdir / "offsite-backup"
        (source / "volumes").mkdir(parents=True, exist_ok=True)
        # half random (parquet-like, incompressible), half repetitive text
        with open(source / "volumes" / "data.bin", "wb") as fh:
            left = size // 2
            while left > 0:
                chunk = os.urandom(min(left, 4 * 1024**2))
                fh.write(chunk)
                left -= len(chunk)
        with open(source / "volumes" / "logs.txt", "wb") as fh:
            line = b"2026-01-01T00:00:00Z INFO ingestor wrote s3://lake/raw/part-00001.parquet\n"
            fh.write(line * ((size // 2) // len(line)))
        (source / "manifest.json").write_text(
            json.dumps({"id": "bench-20260101T000000Z", "environment": "bench",
                        "time": "2026-01-01T00:00:00+00:00", "artefacts": []})
        )  # fmt: skip
        password = self.workdir / "restic-password"
        password.write_text("bench-password-not-secret\n")
        times: dict[str, list[float]] = {"tool": [], "raw": []}
        env = types.SimpleNamespace(name="bench", root=self.workdir)

        def fresh(side: str, i: int) -> ResticConfig:
            config = ResticConfig(
                environment="bench", project="lht-bench", repository=str(self.workdir / f"repo-{side}-{i}"),
                password_file=password, credentials_file=None, cache_dir=self.workdir / f"cache-{side}-{i}",
            )  # fmt: skip
            Restic(config).run(["init"], what="init")
            return config

        for i in range(self.settings.heavy_runs):

            def run_tool(i: int = i) -> float:
                config = fresh("tool", i)
                started = time.perf_counter()
                copy_backup(env, source, config)
                return time.perf_counter() - started

            def run_raw(i: int = i) -> float:
                config = fresh("raw", i)
                restic = Restic(config)
                started = time.perf_counter()
                restic.run(["backup", ".", "--host", "lht-bench"], cwd=source, timeout=None)
                return time.perf_counter() - started

            pair: list[tuple[str, Callable[[], float]]] = [("tool", run_tool), ("raw", run_raw)]
            for side, fn in pair if i % 2 == 0 else pair[::-1]:
                times[side].append(fn())
            log(f"offsite run {i + 1}: tool {times['tool'][-1]:.1f}s raw {times['raw'][-1]:.1f}s")
        self.figures.append(
            figure_from_pairs(
                "offsite-copy",
                f"off-site copy of a {human(size)} backup into a restic repository",
                "`restic backup .` of the same files into a fresh repository",
                0.9,
                times["tool"],
                times["raw"],
                throughput_bytes=size,
            )
        )


def _downtime(docker: Sequence[str], ids: Sequence[str]) -> float:
    """The longest time one of ``ids`` was down: its last start minus its last stop."""
    from lakehouse_tasks.health import parse_engine_time

    out = capture([*docker, "inspect", "-f", "{{.State.FinishedAt}} {{.State.StartedAt}}", *ids])
    worst = 0.0
    for line in out.splitlines():
        stopped, _sp, started = line.partition(" ")
        a, b = parse_engine_time(stopped), parse_engine_time(started)
        if a and b and b > a:
            worst = max(worst, (b - a).total_seconds())
    return worst


def human(size: int) -> str:
    if size >= 1024**3:
        return f"{size / 1024**3:.1f} GiB"
    return f"{size / 1024**2:.0f} MiB"


def compile_bytecode(root: Path) -> None:
    """Compile the package and the plugins once, as pip does for an installed package. With
    ``PYTHONDONTWRITEBYTECODE=1`` (set on the project's test machines) an editable checkout
    otherwise recompiles every module on every start: 0.35 s quiet, 2.8 s at load 100."""
    import compileall

    for folder in ("lakehouse_tasks", "plugins"):
        compileall.compile_dir(str(root / folder), quiet=1, force=False)


def run_suite(
    *,
    root: Path,
    only: Sequence[str] = (),
    runs: int | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Measure the selected figure groups and return the result document."""
    unknown = [g for g in only if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown figure {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    groups = [g for g in GROUPS if not only or g in only]
    settings = Settings.make(quick=quick, runs=runs)
    compile_bytecode(root)
    started = _dt.datetime.now(_dt.UTC)
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lakehouse-bench-"))
    suite = Suite(root, settings, workdir)
    try:
        if "startup" in groups:
            suite.startup()
        if "health" in groups or "memory" in groups:
            if "health" in groups:
                suite.health(memory="memory" in groups)
            else:
                with suite.project_named("memory") as name:
                    stack_file = suite._start_generated(min(settings.sizes), name)
                    suite.memory(stack_file, name)
        if "serve" in groups:
            suite.serve()
        if "deploy" in groups:
            suite.deploy()
        if "backup" in groups:
            suite.backup()
        elif "volume" in groups:  # the volume's backup and restore rows alone (a few minutes)
            suite.backup(parts=("volume",))
        if "offsite" in groups:
            suite.offsite()
    finally:
        suite.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return result_document(
        suite.figures,
        machine=machine_info(),
        quick=quick,
        runs=settings.runs,
        started=started,
        duration_s=time.monotonic() - clock,
    ) | {"settings": settings.__dict__ | {"sizes": list(settings.sizes)}}


def write_results(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def figures_of(doc: dict[str, Any]) -> list[Figure]:
    """:class:`Figure` objects back from a result document (to print its table)."""
    found = []
    for f in doc["figures"]:
        found.append(
            Figure(
                id=f["id"],
                title=f["title"],
                compared_with=f["compared_with"],
                target_kind=f["target"]["kind"],
                target=f["target"]["value"],
                unit=f["target"].get("unit", "x"),
                value=f["value"],
                tool=f.get("tool"),
                raw=f.get("raw"),
                notes=list(f.get("notes") or []),
                extra=dict(f.get("extra") or {}),
            )
        )
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--only", action="append", default=[], help=f"one of {GROUPS}")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    doc = run_suite(root=root, only=args.only, runs=args.runs, quick=args.quick)
    write_results(doc, args.output or root / "bench" / "results" / "latest.json")
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(results_table(figures_of(doc)))
    return 0 if doc["all_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
