"""An engine API request that gets no answer: a refused or broken socket lets the CLI ask the
same (the caller falls back), any other socket error is exit 5 in one sentence with the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.engine import containers, stats
from lakehouse_tasks.errors import EngineError, ExitCode


@pytest.fixture
def local_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "docker.sock"
    path.touch()  # socket_path asks only whether it may read and write it
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.delenv("LAKEHOUSE_ENGINE_API", raising=False)
    return path


def _raising(exc: BaseException) -> Any:
    def ask(_path: str) -> list[dict[str, Any]]:
        raise exc

    return ask


@pytest.mark.parametrize("exc", [ConnectionRefusedError(), FileNotFoundError(), PermissionError()])
def test_a_refused_socket_hands_the_request_to_the_cli(local_socket: Path, exc: OSError) -> None:
    assert containers._from_api(["docker"], "a container list", _raising(exc)) is None


def test_an_engine_that_does_not_answer_is_exit_5_naming_the_request(local_socket: Path) -> None:
    with pytest.raises(EngineError) as err:
        containers._from_api(["docker"], "a container list", _raising(TimeoutError("timed out")))
    assert err.value.exit_code == ExitCode.ENGINE_UNREACHABLE
    assert err.value.message == (
        "The Docker engine did not answer a container list request (timed out); "
        "check `docker info`."
    )


def test_a_stats_request_without_an_answer_names_the_way_around_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAKEHOUSE_ENGINE_API", "0")
    sample = stats.StatsSample(["docker"], [])

    class Silent:
        def rows(self) -> list[dict[str, Any]]:
            raise TimeoutError("timed out")

    sample._sample = Silent()
    with pytest.raises(EngineError) as err:
        sample.rows()
    assert err.value.exit_code == ExitCode.ENGINE_UNREACHABLE
    assert err.value.message == (
        "The Docker engine did not answer a stats request (timed out); check `docker info`, "
        "or run health with --no-resources."
    )
