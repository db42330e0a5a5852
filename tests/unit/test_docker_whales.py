"""State-changing compose calls go through python-on-whales, behind the same choke point."""

from __future__ import annotations

from pathlib import Path

import pytest
from python_on_whales.exceptions import DockerException

from lakehouse_tasks.engine import compose as engine_compose
from lakehouse_tasks.engine import executor
from lakehouse_tasks.environment import MASK, load_environment
from lakehouse_tasks.errors import EngineError
from lakehouse_tasks.testing import write_env


@pytest.fixture
def project(lakehouse_project: Path) -> engine_compose.ComposeProject:
    (lakehouse_project / "env" / "variables.yaml").write_text(
        "DB_PASSWORD: {type: secret, required: true}\n"
    )
    write_env(lakehouse_project, "dev", {"DB_PASSWORD": "hunter2-very-secret"})
    env = load_environment("dev", process_env={})
    compose_file = lakehouse_project / "compose" / "docker-compose.yaml"
    compose_file.write_text("services: {}\n")
    return engine_compose.ComposeProject(env=env, files=[compose_file], project_name="lht-whales")


def test_a_python_on_whales_failure_becomes_an_engine_error_without_secrets(
    project: engine_compose.ComposeProject,
) -> None:
    def fail(_client: object) -> None:
        raise DockerException(
            ["docker", "compose", "down"], 1, b"", b"password hunter2-very-secret rejected"
        )

    before = len(executor.CALLS)
    with pytest.raises(EngineError) as raised:
        project.whales(["down"], fail, what="compose down")
    assert "hunter2-very-secret" not in raised.value.stderr
    assert MASK in raised.value.stderr
    assert "compose down failed" in raised.value.message
    assert len(executor.CALLS) == before + 1  # counted like every other docker call
    assert executor.CALLS[-1][-1] == "down"


def test_down_uses_the_typed_api(
    project: engine_compose.ComposeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, object]] = []

    class Compose:
        def down(self, **kwargs: object) -> None:
            seen.append(("down", kwargs))

    class Client:
        compose = Compose()

    project._client = Client()  # type: ignore[assignment]
    project.down(volumes=True)
    project.down()
    assert seen == [
        ("down", {"remove_orphans": True, "volumes": True, "quiet": True}),
        ("down", {"remove_orphans": True, "volumes": False, "quiet": True}),
    ]


def test_a_swarm_secret_is_created_through_the_typed_api_with_its_value_off_argv(
    tmp_path: Path,
) -> None:
    from lakehouse_tasks.engine import swarm as engine_swarm

    seen = tmp_path / "seen"
    docker = tmp_path / "docker"
    # A docker CLI stand-in: records its argv and what the file it is given holds.
    docker.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {seen}.argv\n'
        "for last; do :; done\n"
        f'cat "$last" > {seen}.value\n'
        "echo sec-id\n"
    )
    docker.chmod(0o755)
    engine_swarm.create_secret([str(docker)], "stk", "stk_db_password_ab12", "hunter2-very-secret")
    argv = (tmp_path / "seen.argv").read_text()
    assert "hunter2-very-secret" not in argv
    assert argv.splitlines()[:5] == [
        "secret",
        "create",
        "--label",
        "io.lakehouse.stack=stk",
        "stk_db_password_ab12",
    ]
    assert (tmp_path / "seen.value").read_text() == "hunter2-very-secret"
