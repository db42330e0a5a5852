"""Stacks to benchmark on: generated N-service stacks and the dev rehearsal stack.

Generated stacks are N busybox stand-ins that only sleep (no httpd, no 1 s fault poll), so
128 of them barely load a 2-core machine; each keeps a healthcheck (so ``inspect`` carries a
health log, as on the real stack) and the project's labels.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakehouse_tasks.project import Project

BUSYBOX_IMAGE = "lakehouse-rehearsal/busybox:rehearsal"
POSTGRES_IMAGE = "lakehouse-rehearsal/postgres:rehearsal"
#: Compose project names of benchmark stacks start with this (leftovers are easy to find).
PROJECT_PREFIX = "lhbench-"


def project_name(hint: str) -> str:
    slug = "".join(ch for ch in hint.lower() if ch.isalnum())[:12]
    return f"{PROJECT_PREFIX}{slug}-{uuid.uuid4().hex[:6]}"


def generated_stack(services: int, *, image: str = BUSYBOX_IMAGE) -> dict[str, Any]:
    """A compose document of ``services`` sleeping stand-ins (``svc-001`` ...), layers 1-6."""
    if services < 1:
        raise ValueError(f"a stack needs at least one service, not {services}")
    doc: dict[str, Any] = {"services": {}}
    for i in range(1, services + 1):
        name = f"svc-{i:03d}"
        doc["services"][name] = {
            "image": image,
            "pull_policy": "never",
            "entrypoint": ["/bin/sleep", "2147483647"],
            # sleep ignores SIGTERM as PID 1; init makes `down` quick.
            "init": True,
            "healthcheck": {
                "test": ["CMD", "/bin/true"],
                "interval": "60s",
                "timeout": "5s",
                "retries": 3,
                "start_period": "0s",
            },
            "labels": {"io.lakehouse.layer": str(1 + (i - 1) % 6)},
            "deploy": {"resources": {"limits": {"cpus": "0.1", "memory": "16M"}}},
        }
    return doc


def write_generated_stack(directory: Path, services: int, *, image: str = BUSYBOX_IMAGE) -> Path:
    """Write :func:`generated_stack` as ``stack-<N>.yaml`` (JSON is YAML) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"stack-{services}.yaml"
    path.write_text(json.dumps(generated_stack(services, image=image), indent=1) + "\n")
    return path


from lakehouse_tasks.testing import free_port  # noqa: E402  (distinct ports per process)


def port_variables(root: Path, env_name: str) -> list[str]:
    """Every ``*_PORT`` variable of the environment's tracked file."""
    from lakehouse_tasks.environment import read_env_file

    return sorted(k for k in read_env_file(root / "env" / f"{env_name}.env") if k.endswith("_PORT"))


def rehearsal_env_file(directory: Path, root: Path, name: str, env_name: str = "dev") -> Path:
    """An extra env file giving a rehearsal stack its own project name and free ports."""
    values = {"COMPOSE_PROJECT_NAME": name}
    values.update({var: str(free_port()) for var in port_variables(root, env_name)})
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def open_generated(root: Path, stack_file: Path, name: str) -> Project:
    """A fresh :class:`Project` whose compose files are just ``stack_file`` (dev's values)."""
    from lakehouse_tasks.engine.compose import ComposeProject
    from lakehouse_tasks.environment import load_environment
    from lakehouse_tasks.project import Project

    env = load_environment("dev", strict=False, root=root)
    compose = ComposeProject(env=env, files=[stack_file], project_name=name)
    return Project(env=env, compose=compose, rehearsal=True)


def compose_argv(stack_file: Path, name: str) -> list[str]:
    """The raw ``docker compose`` prefix for a generated stack."""
    return ["docker", "compose", "-p", name, "-f", str(stack_file)]


def remove_project(name: str) -> None:
    """Remove every container, network and volume of compose project ``name``."""
    label = f"label=com.docker.compose.project={name}"

    def ids(*args: str) -> list[str]:
        return subprocess.run(
            ["docker", *args, "--filter", label, "-q"], capture_output=True, text=True
        ).stdout.split()

    containers = ids("ps", "-a")
    if containers:
        subprocess.run(["docker", "rm", "-f", "-v", *containers], capture_output=True)
    networks = ids("network", "ls")
    if networks:
        subprocess.run(["docker", "network", "rm", *networks], capture_output=True)
    volumes = ids("volume", "ls")
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True)


def bench_environ(state_dir: Path) -> dict[str, str]:
    """The process environment for tool subprocesses: a private state dir (so a deploy lock
    or history of the benchmark never meets another user's), no rehearsal defaults."""
    env = dict(os.environ)
    env["LAKEHOUSE_STATE_DIR"] = str(state_dir)
    env.pop("LAKEHOUSE_ENV", None)
    return env
