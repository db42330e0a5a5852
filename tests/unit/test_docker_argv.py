"""The docker choke point builds python-on-whales' command lines without importing it.

``lakehouse_tasks.docker`` runs every command itself (python-on-whales with pydantic costs
0.2-0.5 s to import, paid before the first docker call of every task); these tests keep its
command lines and its output and error handling the same as python-on-whales'.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse_tasks.engine import compose as engine_compose
from lakehouse_tasks.engine import executor
from lakehouse_tasks.environment import load_environment
from lakehouse_tasks.errors import EngineError, ExitCode

REPO = Path(__file__).resolve().parents[2]


def _compose(profiles: list[str]) -> engine_compose.ComposeProject:
    env = load_environment("dev", strict=False, root=REPO)
    files = [REPO / "compose" / "docker-compose.yaml", REPO / "compose" / "rehearsal.yaml"]
    return engine_compose.ComposeProject(
        env=env, files=files, profiles=profiles, project_name="lh-argv"
    )


@pytest.mark.parametrize("profiles", [[], ["spark"], ["spark", "bi"]])
def test_compose_command_line_is_python_on_whales_own(profiles: list[str]) -> None:
    compose = _compose(profiles)
    pow_cmd = [str(a) for a in compose.client.client_config.docker_compose_cmd]
    assert compose.compose_cmd == pow_cmd
    assert compose.docker_cmd == [str(a) for a in compose.client.client_config.docker_cmd]


def test_running_a_task_that_talks_to_docker_does_not_import_python_on_whales() -> None:
    probe = (
        "import sys\n"
        "from lakehouse_tasks.engine import executor\n"
        "executor.run([sys.executable, '-c', 'print(1)'])\n"
        "print('python_on_whales' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "False"


def test_run_returns_stdout_without_its_last_newline() -> None:
    assert executor.run([sys.executable, "-c", "print('a'); print('b')"]) == "a\nb"


def test_a_failed_command_is_an_engine_error_with_scrubbed_stderr() -> None:
    script = "import sys; sys.stderr.write('boom s3cret\\n'); sys.exit(3)"
    with pytest.raises(EngineError) as caught:
        executor.run(
            [sys.executable, "-c", script],
            scrub=lambda text: text.replace("s3cret", "****"),
            what="docker thing",
        )
    assert caught.value.message == "docker thing failed: boom ****"
    assert caught.value.exit_code == ExitCode.DEPLOY_FAILED
    assert "s3cret" not in caught.value.stderr


def test_an_unreachable_engine_is_exit_code_engine_unreachable() -> None:
    script = (
        "import sys; sys.stderr.write('Cannot connect to the Docker daemon at unix:///x\\n');"
        "sys.exit(1)"
    )
    with pytest.raises(EngineError) as caught:
        executor.run([sys.executable, "-c", script])
    assert caught.value.exit_code == ExitCode.ENGINE_UNREACHABLE


def test_the_call_log_counts_every_command_but_keeps_only_the_last() -> None:
    log = executor.CallLog()
    for i in range(executor.CallLog.KEEP + 5):
        log.append(["docker", str(i)])
    assert len(log) == executor.CallLog.KEEP + 5
    before = len(log)
    log.append(["docker", "ps"])
    log.append(["docker", "inspect"])
    assert [c[1] for c in log[before:]] == ["ps", "inspect"]
    assert log[-1] == ["docker", "inspect"]
    assert len(list(log)) == executor.CallLog.KEEP
    with pytest.raises(IndexError):
        log[0]
