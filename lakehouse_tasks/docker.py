"""The one module that talks to Docker.

Everything else receives plain data from here. Every command goes through :func:`run`, the
single choke point that builds the command line from python-on-whales' client config, logs it
when ``LAKEHOUSE_TRACE_DOCKER=1``, counts it (tests and benchmarks read :data:`CALLS`), and
turns ``DockerException`` into :class:`~lakehouse_tasks.errors.EngineError` carrying the
command's stderr with every secret scrubbed.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from python_on_whales.utils import run as _pow_run

from .errors import EngineError, ExitCode

if TYPE_CHECKING:
    from .environment import Environment

#: Documented minimum versions (docs/EXIT_CODES.md, preflight).
MIN_ENGINE_VERSION = (20, 10)
MIN_COMPOSE_VERSION = (2, 20)

#: Every command line run through :func:`run` in this process (argv without secrets).
CALLS: list[list[str]] = []
_calls_lock = threading.Lock()

_ENGINE_DOWN_MARKERS = (
    "Cannot connect to the Docker daemon",
    "Is the docker daemon running",
    "error during connect",
    "permission denied while trying to connect",
)


def _trace(cmd: Sequence[str]) -> None:
    with _calls_lock:
        CALLS.append(list(cmd))
    if os.environ.get("LAKEHOUSE_TRACE_DOCKER") == "1":
        print("+ " + " ".join(cmd), file=sys.stderr)


def translate(exc: DockerException, *, scrub: Any = None, what: str = "") -> EngineError:
    """A project error for a failed docker command, with its stderr (secrets scrubbed)."""
    stderr = (exc.stderr or "").strip()
    if scrub is not None:
        stderr = scrub(stderr)
    if any(marker in stderr for marker in _ENGINE_DOWN_MARKERS):
        return EngineError(
            "The Docker engine is not reachable; start it (scripts/docker-engine does on "
            "Debian) and check `docker info`.",
            ExitCode.ENGINE_UNREACHABLE,
            command=list(exc.docker_command),
            stderr=stderr,
        )
    last = stderr.splitlines()[-1] if stderr else f"exit code {exc.return_code}"
    return EngineError(
        f"{what or 'docker'} failed: {last}",
        ExitCode.ENGINE_UNREACHABLE if not what else ExitCode.DEPLOY_FAILED,
        command=list(exc.docker_command),
        stderr=stderr,
    )


def run(
    cmd: Sequence[Any],
    *,
    scrub: Any = None,
    what: str = "",
    capture_stderr: bool = True,
    input: bytes | None = None,
) -> str:
    """Run one docker command line and return its stdout; the project's choke point."""
    argv = [str(a) for a in cmd]
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        raise EngineError(
            f"The {argv[0]!r} command is not installed; install Docker (scripts/docker-engine "
            "does on Debian).",
            ExitCode.ENGINE_UNREACHABLE,
        )
    _trace(argv)
    try:
        kwargs: dict[str, Any] = {"capture_stdout": True, "capture_stderr": capture_stderr}
        if input is not None:
            kwargs["input"] = input
        out = _pow_run(argv, **kwargs)
    except DockerException as exc:
        raise translate(exc, scrub=scrub, what=what) from None
    return out if isinstance(out, str) else ""


def parse_version(text: str) -> tuple[int, ...]:
    """``(20, 10, 24)`` from ``20.10.24+dfsg1`` or ``v2.26.1-4``."""
    parts: list[int] = []
    for chunk in text.strip().lstrip("v").split("."):
        digits = ""
        for ch in chunk:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@dataclass(frozen=True)
class EngineInfo:
    """What the engine says about itself and its host."""

    server_version: str
    compose_version: str
    cpus: int
    memory_bytes: int
    docker_root_dir: str
    cgroup_version: str
    swarm_state: str


class Engine:
    """The Docker engine, outside any compose project."""

    def __init__(self, client: DockerClient | None = None) -> None:
        self.client = client or DockerClient()

    @property
    def docker_cmd(self) -> list[str]:
        return list(self.client.client_config.docker_cmd)

    def run(self, *args: Any, **kwargs: Any) -> str:
        return run([*self.docker_cmd, *args], **kwargs)

    def info(self) -> EngineInfo:
        """One ``docker info`` and one ``docker compose version`` call."""
        raw = json.loads(self.run("info", "--format", "{{json .}}"))
        if raw.get("ServerErrors"):
            raise EngineError(
                "The Docker engine is not reachable; start it (scripts/docker-engine does on "
                "Debian) and check `docker info`.",
                ExitCode.ENGINE_UNREACHABLE,
                stderr="; ".join(raw["ServerErrors"]),
            )
        try:
            compose = self.run("compose", "version", "--short").strip()
        except EngineError:
            compose = ""
        return EngineInfo(
            server_version=str(raw.get("ServerVersion", "")),
            compose_version=compose,
            cpus=int(raw.get("NCPU", 0)),
            memory_bytes=int(raw.get("MemTotal", 0)),
            docker_root_dir=str(raw.get("DockerRootDir", "/var/lib/docker")),
            cgroup_version=str(raw.get("CgroupVersion", "")),
            swarm_state=str((raw.get("Swarm") or {}).get("LocalNodeState", "inactive")),
        )

    def image_ids(self, references: Iterable[str]) -> dict[str, str | None]:
        """Image id per reference (``None`` when absent locally), in one inspect call."""
        refs = sorted(set(references))
        if not refs:
            return {}
        result: dict[str, str | None] = dict.fromkeys(refs)
        try:
            out = self.run("image", "inspect", "--format", "{{json .}}", *refs)
        except EngineError as exc:
            # inspect fails as a whole when one image is missing but still prints the others.
            out = ""
            for ref in refs:
                try:
                    out += self.run("image", "inspect", "--format", "{{json .}}", ref) + "\n"
                except EngineError:
                    continue
            if not out and "No such image" not in exc.stderr:
                raise
        for line in out.splitlines():
            if not line.strip():
                continue
            data = json.loads(line)
            names = set(data.get("RepoTags") or []) | set(data.get("RepoDigests") or [])
            for ref in refs:
                if ref in names or ref == data.get("Id") or f"{ref}:latest" in names:
                    result[ref] = data.get("Id")
        return result


class _EnvFile:
    """The resolved environment as one private compose ``--env-file`` (0600, removed at exit).

    Compose interpolates ``${VAR}`` from its env files and the process environment; writing the
    already-layered values into one file makes compose see exactly what the tool validated.
    """

    _dir: Path | None = None

    @classmethod
    def write(cls, env: Environment) -> Path:
        if cls._dir is None:
            cls._dir = Path(tempfile.mkdtemp(prefix="lakehouse-env-"))
            os.chmod(cls._dir, 0o700)
            atexit.register(shutil.rmtree, cls._dir, True)
        path = cls._dir / f"{env.project_name}.env"
        lines = []
        for key, value in sorted(env.values.items()):
            lines.append(f"{key}={_quote_env_value(key, value)}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return path


def _quote_env_value(key: str, value: str) -> str:
    if "\n" in value:
        from .errors import ConfigError

        raise ConfigError(f"{key} spans several lines, which compose cannot read; use one line.")
    if "'" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{escaped}"'


@dataclass
class ComposeProject:
    """One compose project: an environment's files, profiles and project name."""

    env: Environment
    files: list[Path]
    profiles: list[str] = field(default_factory=list)
    project_name: str = ""

    def __post_init__(self) -> None:
        if not self.project_name:
            self.project_name = self.env.project_name
        self._client: DockerClient | None = None
        self._config: dict[str, Any] | None = None

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            self._client = DockerClient(
                compose_files=[str(f) for f in self.files],
                compose_env_files=[str(_EnvFile.write(self.env))],
                compose_project_name=self.project_name,
                compose_project_directory=str(self.env.root),
                compose_profiles=list(self.profiles),
            )
        return self._client

    @property
    def compose_cmd(self) -> list[str]:
        return list(self.client.client_config.docker_compose_cmd)

    @property
    def docker_cmd(self) -> list[str]:
        return list(self.client.client_config.docker_cmd)

    def compose(self, *args: Any, what: str = "", **kwargs: Any) -> str:
        """Run ``docker compose <args>`` for this project (through the choke point)."""
        return run([*self.compose_cmd, *args], scrub=self.env.scrub, what=what, **kwargs)

    def config(self, *, refresh: bool = False) -> dict[str, Any]:
        """The merged configuration as compose's JSON (computed once per project object)."""
        if self._config is None or refresh:
            for path in self.files:
                if not path.exists():
                    from .errors import ConfigError

                    raise ConfigError(
                        f"Compose file {path} does not exist; check the compose/ folder."
                    )
            try:
                out = self.compose("config", "--format", "json", what="compose config")
            except EngineError as exc:
                from .errors import ConfigError

                detail = exc.stderr.splitlines()[-1] if exc.stderr else exc.message
                raise ConfigError(
                    f"The merged compose configuration of {self.env.name!r} is invalid: "
                    f"{detail}; fix the compose files or the environment."
                ) from None
            self._config = json.loads(out)
        return self._config

    def config_yaml(self) -> str:
        return self.compose("config", what="compose config")
