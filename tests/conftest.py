"""The end-to-end harness shared by every test that needs the real Docker engine.

- ``docker_engine`` (session): ensures a running engine with compose v2 through
  ``scripts/docker-engine`` (idempotent: a no-op when one answers).
- ``standin_images`` (session): builds the offline stand-in images, or reuses them from the
  cache keyed by a hash of their inputs.
- ``rehearsal_project`` (function): a factory giving each test its own compose project name
  (prefix ``lht-``) and free host ports, and removing its containers, networks and volumes
  afterwards, also when the test fails.
- ``shared_dev_stack`` (session): ONE deployed dev rehearsal stack for the tests that only
  read it; tests that change or break a stack deploy their own with ``rehearsal_project``.
- At the end of the session a check fails the run if any container, network or volume of a
  test project (``lht-`` prefix) is left behind.

Engine tests carry ``@pytest.mark.engine``; CI runs them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
#: Every test project of this pytest session starts with this prefix, so the leftover check
#: looks only at what this session created (other runs on the same engine are left alone).
TEST_PROJECT_PREFIX = f"lht-{uuid.uuid4().hex[:4]}-"

#: Health timings for rehearsal stacks in tests: the stand-ins answer at once, so a short
#: interval keeps a 15-container deploy near 30 s instead of minutes. The start period stays
#: long: a check that passes inside it marks the container healthy at once, so it costs nothing
#: when things are quick and gives PostgreSQL's first initdb room on a loaded 2-core machine.
#: Everything else (limits, restart policy, logging, dependencies) stays the environment's own.
FAST_HEALTH = {
    "HEALTHCHECK_INTERVAL": "2s",
    "HEALTHCHECK_TIMEOUT": "5s",
    "HEALTHCHECK_RETRIES": "3",
    "HEALTHCHECK_START_PERIOD": "60s",
    "HIVE_METASTORE_START_PERIOD": "60s",
}


def unique_project_name(hint: str = "") -> str:
    """A compose project name no other test uses."""
    slug = "".join(ch for ch in hint.lower() if ch.isalnum())[:12]
    return f"{TEST_PROJECT_PREFIX}{slug}{'-' if slug else ''}{uuid.uuid4().hex[:8]}"


from lakehouse_tasks.testing import free_port  # noqa: E402  (distinct ports per process)


def port_variables(env_name: str, root: Path = REPO) -> list[str]:
    """Every ``*_PORT`` variable of an environment's tracked file and the schema."""
    from lakehouse_tasks.environment import read_env_file

    names = {k for k in read_env_file(root / "env" / f"{env_name}.env") if k.endswith("_PORT")}
    schema = root / "env" / "variables.yaml"
    if schema.exists():
        import yaml

        names |= {
            k
            for k, v in (yaml.safe_load(schema.read_text()) or {}).items()
            if k.endswith("_PORT") and (v or {}).get("type") == "port"
        }
    return sorted(names)


def remove_project(name: str) -> None:
    """Remove every container, network and volume labelled with compose project ``name``.

    A network still holds the endpoints of containers the engine is removing, so on a loaded
    engine `network rm` right after `rm -f` can fail (seen with the real-application stack and
    a 64-service project): whatever is still there is asked for again, for up to 20 s."""
    label = f"label=com.docker.compose.project={name}"

    def ids(*args: str) -> list[str]:
        out = subprocess.run(
            ["docker", *args, "--filter", label, "-q"], capture_output=True, text=True
        ).stdout
        return out.split()

    for _attempt in range(40):
        containers = ids("ps", "-a")
        if containers:
            subprocess.run(["docker", "rm", "-f", "-v", *containers], capture_output=True)
        networks, volumes = ids("network", "ls"), ids("volume", "ls")
        if networks:
            subprocess.run(["docker", "network", "rm", *networks], capture_output=True)
        if volumes:
            subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True)
        if not (containers or networks or volumes):
            return
        if not (ids("ps", "-a") or ids("network", "ls") or ids("volume", "ls")):
            return
        time.sleep(0.5)


def leftovers(prefix: str = TEST_PROJECT_PREFIX) -> dict[str, dict[str, list[str]]]:
    """Per compose project whose name starts with ``prefix``: its remaining containers,
    networks and volumes."""
    found: dict[str, dict[str, list[str]]] = {}
    for kind, cmd in {
        "containers": [
            "ps",
            "-a",
            "--format",
            '{{.Names}} {{.Label "com.docker.compose.project"}}',
        ],
        "networks": [
            "network",
            "ls",
            "--format",
            '{{.Name}} {{.Label "com.docker.compose.project"}}',
        ],
        "volumes": [
            "volume",
            "ls",
            "--format",
            '{{.Name}} {{.Label "com.docker.compose.project"}}',
        ],
    }.items():
        proc = subprocess.run(["docker", *cmd], capture_output=True, text=True)
        names = [
            line.split()[0]
            for line in proc.stdout.splitlines()
            if len(line.split()) > 1 and line.split()[1].startswith(prefix)
        ]
        if names:
            found[kind] = names
    return found


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """A running engine with compose v2; returns its server version."""
    proc = subprocess.run([str(REPO / "scripts" / "docker-engine")], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"scripts/docker-engine could not provide an engine:\n{proc.stderr[-2000:]}")
    return subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture(scope="session")
def standin_images(docker_engine: str) -> dict[str, str]:
    """The stand-in images, built once and then reused from the cache."""
    from lakehouse_tasks.rehearsal import build_standins

    return build_standins(log=lambda *_: None)


@pytest.fixture(scope="session")
def single_node_swarm(docker_engine: str, standin_images: dict[str, str]) -> Iterator[None]:
    """A single-node swarm; left again at the end when this session created it."""
    from lakehouse_tasks.engine import swarm as engine_swarm

    state, _manager = engine_swarm.swarm_state(["docker"])
    created = state != "active"
    if created:
        engine_swarm.swarm_init(["docker"])
    try:
        yield
    finally:
        if created:
            engine_swarm.swarm_leave(["docker"])


@pytest.fixture(scope="session", autouse=True)
def _no_test_project_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the run if a test project's container, network or volume outlives the suite."""
    yield
    if not any(item.get_closest_marker("engine") for item in request.session.items):
        return
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return
    left = leftovers()
    if left:
        for project in left:
            remove_project(project)
        pytest.fail(f"test projects left resources behind (now removed): {json.dumps(left)}")


class RehearsalFactory:
    """Makes rehearsal projects with their own project name and ports; removes them after."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self.names: list[str] = []

    def env_file(
        self, env: str = "dev", hint: str = "", *, fast: bool = True, **overrides: Any
    ) -> tuple[str, Path]:
        name = unique_project_name(hint or env)
        values = {"COMPOSE_PROJECT_NAME": name, **(FAST_HEALTH if fast else {})}
        values["BACKUP_DIR"] = str(self._tmp.mktemp("backups"))
        values.update({var: str(free_port()) for var in port_variables(env)})
        values.update({k: str(v) for k, v in overrides.items()})
        path = self._tmp.mktemp("rehearsal") / f"{name}.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        self.names.append(name)
        return name, path

    def __call__(
        self, env: str = "dev", hint: str = "", *, fast: bool = True, **overrides: Any
    ) -> Any:
        """A ``Project`` for ``env`` on the stand-ins, not yet deployed; ``project.env_file``
        is the extra env file that gives it its name, ports and overrides (pass it to tasks
        as ``env_file=[...]``)."""
        from lakehouse_tasks.project import open_project

        _name, path = self.env_file(env, hint, fast=fast, **overrides)
        project = open_project(env, rehearsal=True, env_files=[str(path)], strict=False)
        project.env_file = str(path)
        return project

    def cleanup(self) -> None:
        for name in self.names:
            remove_project(name)


@pytest.fixture
def rehearsal_project(
    docker_engine: str, standin_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Any]]:
    factory = RehearsalFactory(tmp_path_factory)
    try:
        yield factory
    finally:
        factory.cleanup()


def self_signed_cert(cert: Path, key: Path, *, days: int = 2) -> None:
    """Write a self-signed certificate for localhost and its key (openssl)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days),
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip


BUSYBOX_STANDIN = "lakehouse-rehearsal/busybox:rehearsal"


def synthetic_project(
    root: Path, compose: str, hint: str, **fixed: str
) -> Iterator[Callable[..., Any]]:
    """Body of a fixture for a hand-written compose file on the busybox stand-in: writes
    ``compose`` as ``root``'s docker-compose.yaml and yields ``make(**overrides)``, which writes
    dev's env file (a unique project name, ``BUSYBOX_IMAGE``, ``fixed``, the overrides) and
    opens the project; the compose project is removed afterwards. ``make.project_name`` and
    ``make.root`` name it."""
    from lakehouse_tasks.project import open_project
    from lakehouse_tasks.testing import write_env

    probe = subprocess.run(["docker", "image", "inspect", BUSYBOX_STANDIN], capture_output=True)
    if probe.returncode != 0:
        pytest.fail(f"{BUSYBOX_STANDIN} is missing: build it with `invoke rehearsal.build` first")
    name = unique_project_name(hint)
    (root / "compose" / "docker-compose.yaml").write_text(compose)

    def make(**overrides: str) -> Any:
        values = {
            "COMPOSE_PROJECT_NAME": name,
            "BUSYBOX_IMAGE": BUSYBOX_STANDIN,
            "BIND_ADDRESS": "127.0.0.1",
            **fixed,
            **overrides,
        }
        write_env(root, "dev", values)
        return open_project("dev", root=root)

    make.project_name = name  # type: ignore[attr-defined]
    make.root = root  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        remove_project(name)


def container_states(project_name: str) -> dict[str, dict[str, Any]]:
    """``docker inspect`` of every container of a compose project, by service."""
    label = f"label=com.docker.compose.project={project_name}"
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True, check=True
    )
    ids = listed.stdout.split()
    if not ids:
        return {}
    inspected = subprocess.run(
        ["docker", "inspect", *ids], capture_output=True, text=True, check=True
    )
    return {
        d["Config"]["Labels"]["com.docker.compose.service"]: d for d in json.loads(inspected.stdout)
    }


def deploy_and_wait(project: Any, timeout: float = 300) -> None:
    """Deploy ``project`` with the tool's own deploy (no backup, no preflight)."""
    from lakehouse_tasks.deploy import deploy_stack  # type: ignore[attr-defined]

    deploy_stack(project, skip_backup=True, skip_preflight=True, timeout=timeout)


@pytest.fixture(scope="session")
def shared_dev_stack(
    docker_engine: str, standin_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """One deployed dev rehearsal stack shared by every test that only reads it."""
    factory = RehearsalFactory(tmp_path_factory)
    project = factory(env="dev", hint="shared")
    try:
        deploy_and_wait(project)
        yield project
    finally:
        factory.cleanup()


@pytest.fixture
def as_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render as if stdout were a terminal (rich tables, live views)."""
    monkeypatch.setenv("LAKEHOUSE_FORCE_TTY", "1")


os.environ.setdefault(
    "LAKEHOUSE_STATE_DIR",
    str(Path(os.environ.get("TMPDIR", "/tmp")) / f"lakehouse-test-state-{os.getpid()}"),
)


@pytest.fixture(autouse=True)
def _engine_api_only_for_engine_tests(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests without the engine mark fake ``executor.run``; the engine's API over its socket
    (lakehouse_tasks.engine_api) would bypass the fake, so they use the CLI path."""
    if request.node.get_closest_marker("engine") is None:
        monkeypatch.setenv("LAKEHOUSE_ENGINE_API", "0")


@pytest.fixture(scope="session")
def real_app_images(docker_engine: str, standin_images: dict[str, str]) -> dict[str, str]:
    """The real-application rehearsal images (Spark, Hive metastore, S3, Superset, Airflow,
    nginx, Prometheus), built once per session (side by side: a cold build is mostly
    downloads) and then reused from the cache keyed by a hash of their inputs. Only the
    real-tier tests ask for them."""
    from lakehouse_tasks.rehearsal_real import build_real_images

    return build_real_images(log=lambda *_: None, jobs=4)


#: pytest-timeout for the tests on the real-application tier. The first one to run also sets up
#: the images (built from packages on a fresh machine: 8 minutes and more) and the stack (the
#: tool's deploy, itself given 900 s): with the suite's 900 s, pytest stopped a deploy that was
#: still progressing before the tool could name what it waited for (a fresh-clone run, load 18).
REAL_TIER_TIMEOUT_S = 2400


@pytest.fixture(scope="session")
def real_app_stack(
    real_app_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """ONE deployed dev stack on the real-application tier (LAKEHOUSE_REHEARSAL_TIER=real),
    with the monitoring plugin on (its Prometheus is Debian's real one there), shared by the
    tests that read it or break one service and restore it."""
    factory = RehearsalFactory(tmp_path_factory)
    # Real JVMs (Spark, the metastore creating its schema) start in minutes, not seconds, on a
    # loaded 2-core machine: a long start period costs nothing when they are quicker, since a
    # check that passes inside it marks the container healthy at once.
    project = factory(
        env="dev",
        hint="realapp",
        LAKEHOUSE_REHEARSAL_TIER="real",
        ENABLE_MONITORING="true",
        HEALTHCHECK_START_PERIOD="600s",
        HIVE_METASTORE_START_PERIOD="600s",
        # Superset's init and three JVMs starting side by side load the machine well past its
        # 2 cores (load 15-50 measured): the same real probes, with more patience. (The real
        # Airflow webserver that went unhealthy once in five deploys was shut down by its own
        # gunicorn monitor, not by a probe timeout: rehearsal_real.REAL_ENVIRONMENT.)
        HEALTHCHECK_TIMEOUT="30s",
    )
    try:
        deploy_and_wait(project, timeout=900)
        yield project
    finally:
        factory.cleanup()
