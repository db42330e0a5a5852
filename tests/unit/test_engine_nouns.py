"""The engine package's argv builders by docker noun: what the data modules hand it (data) and
the command lines it runs for them, through the one executor."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.data import drill_checks
from lakehouse_tasks.engine import commands, executor, images, streams, volumes
from lakehouse_tasks.errors import EngineError, ExitCode, LakehouseError


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, Any]]]:
    """Every command line given to executor.run (nothing runs), with its keyword arguments."""
    seen: list[tuple[list[str], dict[str, Any]]] = []
    monkeypatch.setattr(executor, "docker_binary", lambda: "docker")

    def fake(cmd: Any, **kwargs: Any) -> str:
        seen.append(([str(a) for a in cmd], kwargs))
        return ""

    monkeypatch.setattr(executor, "run", fake)
    return seen


def test_a_throwaway_container_has_no_network_runs_as_root_and_is_removed() -> None:
    argv = volumes.throwaway_argv("img:1", ["v:/v:ro"], "tar", "-cf", "-", stdin=True)
    assert argv[1:] == [
        "run", "-i", "--rm", "--network", "none", "--user", "0:0", "-v", "v:/v:ro",
        "--entrypoint", "tar", "img:1", "-cf", "-",
    ]  # fmt: skip


def test_disk_usage_reads_du_in_kib_per_volume_in_the_order_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(executor, "run", lambda _cmd, **_k: "8\t/v/1\n4\t/v/0\n")
    assert volumes.disk_usage("img", ["a", "b"]) == [4096, 8192]


def test_a_copy_without_cp_clears_the_target_then_pipes_tar(
    runs: list[tuple[list[str], dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    piped: list[tuple[list[str], list[str]]] = []

    def run(cmd: Any, **kwargs: Any) -> str:
        runs.append(([str(a) for a in cmd], kwargs))
        if "cp" in cmd:
            raise EngineError("copy failed: cp: not found", ExitCode.DEPLOY_FAILED)
        return ""

    monkeypatch.setattr(executor, "run", run)
    monkeypatch.setattr(
        streams, "pipe_commands", lambda out, into, **_k: piped.append((list(out), list(into)))
    )
    volumes.copy("img", "src", "dst")
    entrypoints = [argv[argv.index("--entrypoint") + 1] for argv, _ in runs]
    assert entrypoints == ["cp", "find"]  # the partial copy is cleared first
    assert "dst:/v" in runs[1][0]
    (out, into), = piped  # fmt: skip
    assert "src:/v:ro" in out and out[-5:] == ["-C", "/v", "-cf", "-", "."]
    assert "-i" in into and "dst:/v" in into and into[-4:] == ["-C", "/v", "-xf", "-"]


def test_run_detached_hides_the_environment_values_from_a_failure_message(
    runs: list[tuple[list[str], dict[str, Any]]],
) -> None:
    commands.run_detached(
        "pg:16", labels={"purpose": "verify"}, environment={"POSTGRES_PASSWORD": "s3cr3t-value"}
    )
    (argv, kwargs), = runs  # fmt: skip
    assert argv[:5] == ["docker", "run", "-d", "--network", "none"]
    assert argv[5:7] == ["--label", "purpose=verify"]
    assert kwargs["scrub"]("password s3cr3t-value refused") == "password ******** refused"


def test_the_rehearsal_build_uses_the_classic_builder(
    runs: list[tuple[list[str], dict[str, Any]]], tmp_path: Path
) -> None:
    images.build(tmp_path, "lakehouse-rehearsal/x:1", {"BASE": "b:1"})
    (argv, kwargs), = runs  # fmt: skip
    assert argv == [
        "docker", "build", "--quiet", "--tag", "lakehouse-rehearsal/x:1",
        "--build-arg", "BASE=b:1", str(tmp_path),
    ]  # fmt: skip
    assert kwargs["env"] == {"DOCKER_BUILDKIT": "0"}


def test_run_adds_env_to_the_process_environment() -> None:
    script = "import os; print(os.environ['EXTRA'], 'PATH' in os.environ)"
    assert executor.run([sys.executable, "-c", script], env={"EXTRA": "yes"}) == "yes True"


def _fake_docker(tmp_path: Path, body: str) -> str:
    path = tmp_path / "docker"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_dump_row_counts_streams_the_dump_through_exec_and_counts_copy_rows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the fake `docker exec -i ... pg_restore -f -` prints its stdin: the dump's data as SQL
    monkeypatch.setattr(executor, "docker_binary", lambda: _fake_docker(tmp_path, "cat"))
    dump = tmp_path / "db.dump"
    dump.write_text(
        'COPY public."Users" (id, name) FROM stdin;\n1\ta\n2\tb\n\\.\n'
        "COPY s.t (x) FROM stdin;\n\\.\n"
    )
    assert drill_checks.dump_row_counts("cid", dump) == {"public.Users": 2, "s.t": 0}


def test_a_dump_that_does_not_read_is_an_integrity_failure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    failing = _fake_docker(tmp_path, "echo 'pg_restore: input file is too short' >&2; exit 1")
    monkeypatch.setattr(executor, "docker_binary", lambda: failing)
    dump = tmp_path / "db.dump"
    dump.write_bytes(b"")
    with pytest.raises(LakehouseError, match="too short") as err:
        drill_checks.dump_row_counts("cid", dump)
    assert err.value.exit_code == ExitCode.INTEGRITY_FAILED


def test_stack_rm_repeats_while_a_network_is_still_in_use_by_a_stopping_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lakehouse_tasks.engine import client, swarm

    calls: list[list[str]] = []

    def whales(self: client.Engine, preview: Any, _call: Any, *, what: str) -> None:
        calls.append([*self.docker_cmd, *preview])
        if len(calls) < 3:
            raise EngineError(
                f"{what} failed",
                ExitCode.DEPLOY_FAILED,
                stderr="Failed to remove network n1: network n1 is in use by task t1",
            )

    monkeypatch.setattr(client.Engine, "whales", whales)
    swarm.stack_rm(["docker"], "stk", sleep=lambda _s: None)
    assert calls == [["docker", "stack", "rm", "stk"]] * 3


def test_stack_rm_fails_at_once_for_any_other_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse_tasks.engine import client, swarm

    def whales(self: client.Engine, _preview: Any, _call: Any, *, what: str) -> None:
        raise EngineError(f"{what} failed", ExitCode.DEPLOY_FAILED, stderr="denied")

    monkeypatch.setattr(client.Engine, "whales", whales)
    with pytest.raises(EngineError):
        swarm.stack_rm(["docker"], "stk", sleep=lambda _s: pytest.fail("no retry"))


def test_a_typed_engine_call_is_traced_and_its_failure_translated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from lakehouse_tasks.engine import client

    failing = _fake_docker(tmp_path, "echo 'Error: This node is not a swarm manager.' >&2; exit 1")
    before = len(executor.CALLS)
    with pytest.raises(EngineError) as err:
        client.Engine(docker_cmd=[failing]).whales(
            ["stack", "rm", "stk"], lambda c: c.stack.remove("stk"), what="docker stack rm"
        )
    assert executor.CALLS[before:] == [[failing, "stack", "rm", "stk"]]
    assert err.value.message == "docker stack rm failed: Error: This node is not a swarm manager."
    assert err.value.exit_code == ExitCode.DEPLOY_FAILED
