"""Compose projects: one environment's files, profiles and name as ``docker compose``.

``compose down`` and the other state-changing calls go through python-on-whales' typed API
(:meth:`ComposeProject.whales`): they take seconds or minutes, so its import (0.2-0.5 s with
pydantic) is noise there. The read paths that must stay fast (health snapshots, preflight,
``compose config``) and the deploy's ``up`` (run in the background so that it can be stopped on
a timeout) run the command lines that python-on-whales' client config builds (``docker compose
--file ... --profile ... --env-file ... --project-name ... --project-directory ...``; a unit
test compares them) without importing it (docs/PERFORMANCE.md, docs/ARCHITECTURE.md names each
with its figure).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigError, EngineError
from ..paths import write_atomic
from . import executor
from .executor import BackgroundCommand

T = TypeVar("T")

if TYPE_CHECKING:
    from python_on_whales import DockerClient

    from ..environment import Environment


class _EnvFile:
    """The resolved environment as one private compose ``--env-file`` (0600, removed at exit).

    Compose interpolates ``${VAR}`` from its env files and the process environment; writing the
    already-layered values into one file makes compose see exactly what the tool validated.
    """

    _dir: Path | None = None

    @classmethod
    def write(
        cls, env: Environment, *, name: str = "", extra: Mapping[str, str] | None = None
    ) -> Path:
        if cls._dir is None:
            cls._dir = Path(tempfile.mkdtemp(prefix="lakehouse-env-"))
            os.chmod(cls._dir, 0o700)
            atexit.register(shutil.rmtree, cls._dir, True)
        path = cls._dir / f"{name or env.project_name}.env"
        lines = []
        for key, value in sorted({**env.values, **(extra or {})}.items()):
            lines.append(f"{key}={_quote_env_value(key, value)}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return path


def _quote_env_value(key: str, value: str) -> str:
    if "\n" in value:
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
        self._env_file: Path | None = None
        self._saved_config: dict[str, Any] | None = None

    @property
    def env_file(self) -> Path:
        """The private ``--env-file`` of this project (written once per project object)."""
        if self._env_file is None:
            # The secret files the compose `secrets:` of staging and prod point at, written
            # from the same resolved values (lakehouse_tasks.secretfiles).
            from ..secretfiles import write_secret_files

            extra = write_secret_files(self.env, self.project_name)
            self._env_file = _EnvFile.write(self.env, name=self.project_name, extra=extra)
        return self._env_file

    @property
    def client(self) -> DockerClient:
        """The python-on-whales client of this project (imported on first use)."""
        if self._client is None:
            from python_on_whales import DockerClient

            self._client = DockerClient(
                compose_files=[str(f) for f in self.files],
                compose_env_files=[str(self.env_file)],
                compose_project_name=self.project_name,
                compose_project_directory=str(self.env.root),
                compose_profiles=list(self.profiles),
            )
        return self._client

    @property
    def compose_cmd(self) -> list[str]:
        """``docker compose`` with this project's files, profiles, env file, name and
        directory, in python-on-whales' order (``ClientConfig.docker_compose_cmd``)."""
        cmd = [executor.docker_binary(), "compose"]
        for path in self.files:
            cmd += ["--file", str(path)]
        for profile in self.profiles:
            cmd += ["--profile", profile]
        cmd += ["--env-file", str(self.env_file)]
        cmd += ["--project-name", self.project_name]
        cmd += ["--project-directory", str(self.env.root)]
        return cmd

    @property
    def docker_cmd(self) -> list[str]:
        return [executor.docker_binary()]

    def compose(self, *args: Any, what: str = "", **kwargs: Any) -> str:
        """Run ``docker compose <args>`` for this project (through the choke point)."""
        return executor.run([*self.compose_cmd, *args], scrub=self.env.scrub, what=what, **kwargs)

    # ---- lifecycle calls through python-on-whales --------------------------------------------
    # State-changing compose calls go through python-on-whales' typed API: they take seconds
    # to minutes, so its import (0.2-0.5 s, pydantic) is noise there, and its argument
    # handling is the reference. Read paths that must stay fast (health snapshots, preflight)
    # use :meth:`compose` and :func:`run` instead; both share the choke point's tracing, call
    # counting and error translation.
    def whales(self, preview: Sequence[str], call: Callable[[DockerClient], T], *, what: str) -> T:
        """Run one python-on-whales call: traced and counted as ``docker compose <preview>``,
        its ``DockerException`` turned into :class:`EngineError` with the stderr scrubbed."""
        from python_on_whales.exceptions import DockerException

        executor.require_binary(executor.docker_binary())
        executor._trace([*self.compose_cmd, *preview])
        try:
            return call(self.client)
        except DockerException as exc:
            raise executor.translate(exc, scrub=self.env.scrub, what=what) from None

    def down(self, *, remove_orphans: bool = True, volumes: bool = False) -> None:
        """``docker compose down``: containers and networks away; volumes only when asked."""
        preview = ["down", *(["--remove-orphans"] if remove_orphans else [])]
        preview += ["--volumes"] if volumes else []
        self.whales(
            preview,
            lambda c: c.compose.down(remove_orphans=remove_orphans, volumes=volumes, quiet=True),
            what="compose down",
        )

    def up_detached(self) -> None:
        """``docker compose up --detach`` of every service (output captured, so a failure
        carries compose's stderr)."""
        self.whales(
            ["up", "--detach"], lambda c: c.compose.up(detach=True, quiet=True), what="compose up"
        )

    def create(self, services: Sequence[str]) -> None:
        """``docker compose create`` of ``services`` (their containers, networks and volumes,
        nothing started)."""
        if services:
            names = list(services)
            self.whales(
                ["create", *names], lambda c: c.compose.create(names), what="compose create"
            )

    def config_hashes(self) -> str:
        """``docker compose config --hash '*'``: one ``service hash`` line per service
        (python-on-whales has no typed call for ``--hash``)."""
        return self.compose("config", "--hash", "*", what="compose")

    def config(self, *, refresh: bool = False) -> dict[str, Any]:
        """The merged configuration as compose's JSON (computed once per project object)."""
        if self._config is None or refresh:
            for path in self.files:
                if not path.exists():
                    raise ConfigError(
                        f"Compose file {path} does not exist; check the compose/ folder."
                    )
            try:
                out = self.compose("config", "--format", "json", what="compose config")
            except EngineError as exc:
                if (
                    exc.message in (executor.COMPOSE_MISSING_MESSAGE, executor.ENGINE_DOWN_MESSAGE)
                    or not exc.command
                ):
                    raise  # no compose to ask: say that, not "the configuration is invalid"
                detail = exc.stderr.splitlines()[-1] if exc.stderr else exc.message
                raise ConfigError(
                    f"The merged compose configuration of {self.env.name!r} is invalid: "
                    f"{detail}; fix the compose files or the environment."
                ) from None
            self._config = json.loads(out)
            _save_config(self, self._config)
        return self._config

    @property
    def read_afresh(self) -> bool:
        """Whether this object holds a ``compose config`` answer of its own (not a saved one)."""
        return self._config is not None

    def config_for_reading(self) -> dict[str, Any]:
        """The merged configuration for a read-only look (a health snapshot): the copy saved
        by the last ``compose config`` of exactly these inputs when there is one, else a fresh
        ``compose config`` (saved for next time).

        ``compose config`` is the slowest docker call of a snapshot, and its answer only
        changes with its inputs: the saved copy is keyed by the command line, the bytes of
        every compose file, the environment's values, the variables of the process
        environment the files refer to, and the size and time of every file beside the compose
        files (``env_file:``, ``extends:``, configs). Secret values are masked in the saved
        copy (mode 0600, in the state directory); a deploy, a plan or a preflight always
        reads afresh.
        """
        if self._config is not None:
            return self._config
        if self._saved_config is None:
            path = _config_cache_path(self)
            if path is not None and path.is_file():
                try:
                    self._saved_config = json.loads(path.read_text())
                except (OSError, ValueError):
                    self._saved_config = None
        if self._saved_config is not None:
            # never handed to config(): a deploy records and hashes the real configuration
            return self._saved_config
        return self.config()

    def config_yaml(self) -> str:
        return self.compose("config", what="compose config")


# ---- the saved merged configuration (ComposeProject.config_for_reading) ----
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
#: Saved configurations kept per state directory (the newest; others are removed).
CONFIG_CACHE_KEEP = 8


def _config_cache_key(compose: ComposeProject) -> str | None:
    """A digest of everything ``compose config`` reads, ``None`` when a file is unreadable."""
    argv = [a for a in compose.compose_cmd if a != str(compose.env_file)]
    digest = hashlib.sha256(json.dumps(argv).encode())
    digest.update(json.dumps(sorted(compose.env.values.items())).encode())
    names: set[str] = set()
    dirs: set[Path] = set()
    try:
        for path in compose.files:
            data = path.read_bytes()
            digest.update(hashlib.sha256(data).digest())
            names.update(_VARIABLE.findall(data.decode(errors="replace")))
            dirs.add(path.resolve().parent)
        for directory in sorted(dirs):
            for root, subdirs, files in os.walk(directory):
                subdirs.sort()
                for name in sorted(files):
                    st = os.stat(os.path.join(root, name))
                    digest.update(f"{root}/{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    except OSError:
        return None
    # Compose lets the process environment win over the env file.
    digest.update(json.dumps({n: os.environ.get(n) for n in sorted(names)}).encode())
    return digest.hexdigest()


def _config_cache_dir(compose: ComposeProject) -> Path:
    from ..paths import state_dir

    return state_dir(compose.env.root) / "compose-config"


def _config_cache_path(compose: ComposeProject) -> Path | None:
    key = _config_cache_key(compose)
    return None if key is None else _config_cache_dir(compose) / f"{key}.json"


#: The password of a URL's user information (``scheme://user:PASSWORD@host``).
#: A ``$VAR`` reference (a shell script's, left for the container) is not a value.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s:/@]*:)(?!\$)([^\s@/]+)(@)")


def mask_secrets(config: Any, env: Environment) -> Any:
    """The merged compose configuration with secrets masked, and nothing else touched.

    Whole values only: the value of every key whose name is a secret (by the schema or by its
    name), in a service's ``environment`` or an extension field, and the password of a URL's user information
    (``postgresql://user:PASSWORD@host``). Images, volume names and commands stay as they are,
    however common the words of the dev secrets (``airflow``, ``hive``, ``admin``) are, so the
    output is still a valid compose file.
    """
    from ..environment import MASK

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {
                k: MASK if isinstance(v, str) and v and env.is_secret(str(k)) else walk(v, str(k))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [_item(v) if key == "environment" else walk(v) for v in value]
        if isinstance(value, str):
            return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), value)
        return value

    def _item(item: Any) -> Any:  # the list form of environment: ["NAME=value", ...]
        if isinstance(item, str) and "=" in item:
            name, value = item.split("=", 1)
            if value and env.is_secret(name):
                return f"{name}={MASK}"
        return walk(item)

    return walk(config)


def _save_config(compose: ComposeProject, config: dict[str, Any]) -> None:
    """Save a fresh ``compose config`` answer, every secret value masked (best effort)."""
    text = json.dumps(mask_secrets(config, compose.env))
    try:
        path = _config_cache_path(compose)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, text, mode=0o600)
        saved = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in saved[CONFIG_CACHE_KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        return


def compose_logs(compose: ComposeProject, service: str, *, tail: int = 30) -> str:
    """The last ``tail`` log lines of one service, secrets scrubbed ("" when unavailable)."""
    try:
        out = compose.compose("logs", "--tail", str(tail), "--no-color", service)
    except EngineError as exc:
        return exc.stderr
    return compose.env.scrub(out)


def compose_in_background(compose: ComposeProject, *args: Any) -> BackgroundCommand:
    """Start ``docker compose <args>`` for the project without waiting for it."""
    return BackgroundCommand([*compose.compose_cmd, *args], scrub=compose.env.scrub)


def compose_log_lines(compose: ComposeProject, *args: Any) -> Iterable[str]:
    """``docker compose logs <args>`` of the project, line by line, secrets scrubbed."""
    return executor.stream_lines(
        [*compose.compose_cmd, "--ansi", "never", "logs", *args],
        scrub=compose.env.scrub,
        what="docker compose logs",
    )
