"""The command-line contract of issue 14, through the real console scripts in subprocesses:
parser errors, invoke's core flags, number flags, help types, ``--list``, a closed pipe, and a
machine without Docker or without compose v2 (a ``PATH`` that has no ``docker``, or a fake one
that lacks the compose plugin)."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INVOKE = str(BIN / "invoke")
LAKEHOUSE = str(BIN / "lakehouse")


def cli(*argv: str, env: dict[str, str] | None = None, tool: str = INVOKE, **kw: object):
    environ = {**os.environ, "NO_COLOR": "1", **(env or {})}
    environ.pop("LAKEHOUSE_FORCE_TTY", None)
    return subprocess.run(
        [tool, *argv], cwd=REPO, env=environ, capture_output=True, text=True, timeout=120, **kw
    )


def one_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a failed run (no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# ---- 1. invoke's parser errors exit 2 with the nearest flag ----------------------------------
@pytest.mark.parametrize(
    ("argv", "tool", "expected"),
    [
        (["health", "--evn", "prod"], INVOKE, "--env"),
        (["health", "--env"], INVOKE, "--env VALUE"),
        (["deploy", "dev"], LAKEHOUSE, "--env dev"),
        (["restore"], INVOKE, "--backup"),
        (["--bogus"], INVOKE, "invoke --help"),
        (["hleath"], INVOKE, "health"),
        (["deploy", "--dry-rn"], LAKEHOUSE, "--dry-run"),
    ],
)
def test_parser_errors_exit_2_naming_the_fix(argv: list[str], tool: str, expected: str) -> None:
    proc = cli(*argv, tool=tool)
    assert proc.returncode == 2, proc.stderr
    assert expected in one_error(proc)


# ---- 2. core flags: honoured or refused, never a destructive task under --dry ------------------
def fake_docker(tmp_path: Path, body: str = "") -> Path:
    """A directory holding a ``docker`` that records every call in ``calls`` and runs ``body``."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / "docker"
    script.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/calls\n{body}\n')
    script.chmod(0o755)
    return bindir


@pytest.mark.parametrize(
    "argv",
    [
        ["-R", "teardown", "--env", "dev", "--remove-volumes", "--yes"],
        ["--dry", "secrets.generate", "--env", "dev", "--rotate", "MINIO_ROOT_PASSWORD"],
        ["-w", "deploy", "--env", "dev"],
        ["-T", "5", "deploy", "--env", "dev"],
    ],
)
def test_core_flags_that_do_nothing_are_refused_before_anything_runs(
    argv: list[str], tmp_path: Path
) -> None:
    bindir = fake_docker(tmp_path)
    state = tmp_path / "state"
    proc = cli(*argv, env={"PATH": str(bindir), "LAKEHOUSE_STATE_DIR": str(state)})
    assert proc.returncode == 2, proc.stderr
    assert "nothing was run" in one_error(proc)
    assert not (tmp_path / "calls").exists(), "a docker command ran under a refused flag"
    assert not (REPO / "env" / "dev.local.env.new").exists()
    assert not (state / "audit.jsonl").exists()


def test_echo_flag_echoes_the_docker_commands(tmp_path: Path) -> None:
    bindir = fake_docker(tmp_path, "echo '{\"services\": {}}'")
    proc = cli("-e", "config", "--env", "dev", env={"PATH": str(bindir)})
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\+ \S*docker compose .* config --format json$", proc.stderr, re.M)


# ---- 3. number flags ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["audit", "--limit", "x"], "--limit"),
        (["health", "--count", "x"], "--count"),
        (["backup.prune", "--keep-last", "x"], "--keep-last"),
        (["bench", "--runs", "x"], "--runs"),
    ],
)
def test_a_non_number_is_one_sentence_and_exit_2(argv: list[str], flag: str, tmp_path) -> None:
    proc = cli(*argv, env={"LAKEHOUSE_STATE_DIR": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert f"{flag} takes a whole number, not 'x'" in one_error(proc)


# ---- 10. --help types and --list ----------------------------------------------------------
def test_help_shows_numbers_and_repeatable_flags() -> None:
    text = cli("--help", "health").stdout
    assert "--count=INT" in text
    assert re.search(r"--service=VALUE\s+only these services \(repeatable", text)
    assert re.search(r"--env-file=VALUE\s+extra dotenv file", text)
    assert "=STRING" not in cli("--help", "audit").stdout.split("--limit")[1].splitlines()[0]
    assert "--limit=INT" in cli("--help", "audit").stdout


def test_list_shows_every_first_paragraph_whole() -> None:
    from lakehouse_tasks.cli import first_paragraph
    from lakehouse_tasks.tasks import ns

    listing = cli("--list", env={"COLUMNS": "100"}).stdout
    shown: dict[str, str] = {}
    current = ""
    for line in listing.splitlines()[2:]:
        if re.match(r"^  \S", line):
            name, _, text = line.strip().partition("  ")
            current = name.split(" (")[0]
            shown[current] = text.strip()
        elif line.strip() and current:
            # the wrapper breaks after hyphens too ("backup-" / "then-prune")
            glue = "" if shown[current].endswith("-") else " "
            shown[current] += glue + line.strip()
    assert shown
    for name in ns.task_names:
        doc = inspect.getdoc(ns[name])
        assert doc
        assert shown[name] == first_paragraph(doc), name
        assert shown[name].endswith((".", ")")), name


# ---- 11. a closed pipe ----------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--help"], ["--list"], ["--help", "deploy"]])
def test_a_closed_pipe_is_quiet(argv: list[str]) -> None:
    proc = subprocess.Popen(
        [INVOKE, *argv], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line, as with `| head -0`
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "BrokenPipeError" not in err and "Traceback" not in err, err
    assert proc.returncode == 0


# ---- the engine or compose v2 missing --------------------------------------------------------
ENGINE_TASKS = [
    ["config", "--env", "dev"],
    ["plan", "--env", "dev"],
    ["deploy", "--env", "dev"],
    ["deploy", "--env", "dev", "--rehearsal"],
    ["health", "--env", "dev"],
    ["teardown", "--env", "dev"],
    ["backup", "--env", "dev"],
    ["logs", "--env", "dev"],
    ["preflight", "--env", "dev"],
    ["security", "--env", "dev"],
    ["history", "--env", "dev"],
]


@pytest.mark.parametrize("argv", ENGINE_TASKS, ids=lambda a: " ".join(a))
def test_without_docker_every_task_says_so_with_exit_5(argv: list[str], tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = cli(*argv, env={"PATH": str(empty), "LAKEHOUSE_STATE_DIR": str(tmp_path / "s")})
    if argv[0] == "history":  # reads only the state directory: works without an engine
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 5, proc.stderr
    message = one_error(proc)
    assert "Docker is not installed" in message and "scripts/setup" in message
    assert "compose configuration" not in proc.stderr


COMPOSE_MISSING = """
case "$1" in
  compose) echo "docker: 'compose' is not a docker command." >&2
           echo "See 'docker --help'" >&2; exit 1 ;;
  info) echo '{"ServerVersion": "26.1.5", "NCPU": 2, "MemTotal": 4000000000}' ;;
  ps) ;;
  *) exit 0 ;;
esac
"""


@pytest.mark.parametrize("argv", ENGINE_TASKS[:6] + ENGINE_TASKS[8:10], ids=lambda a: " ".join(a))
def test_without_compose_v2_every_task_says_so_with_exit_5(argv: list[str], tmp_path: Path) -> None:
    bindir = fake_docker(tmp_path, COMPOSE_MISSING)
    proc = cli(*argv, env={"PATH": str(bindir), "LAKEHOUSE_STATE_DIR": str(tmp_path / "s")})
    assert proc.returncode == 5, proc.stderr
    message = one_error(proc)
    assert "Compose v2" in message and "scripts/setup" in message, message
    assert "compose configuration" not in proc.stderr
    assert "docker --help" not in proc.stderr
