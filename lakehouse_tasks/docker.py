"""The one module that talks to Docker.

Everything else receives plain data from here. Every command goes through :func:`run`, the
single choke point that logs it when ``LAKEHOUSE_TRACE_DOCKER=1``, counts it (tests and
benchmarks read :data:`CALLS`), and turns a failure into
:class:`~lakehouse_tasks.errors.EngineError` carrying the command's stderr with every secret
scrubbed.

Two ways through it, one choke point. ``compose down`` goes through python-on-whales' typed
API (:meth:`ComposeProject.whales`): it takes seconds or minutes, so its import (0.2-0.5 s
with pydantic) is noise there. The read paths that
must stay fast (health snapshots, preflight, ``compose config``) and the deploy's ``up`` (run in
the background so that it can be stopped on a timeout) run the command lines that
python-on-whales' client config builds (``docker compose --file ... --profile ... --env-file ...
--project-name ... --project-directory ...``; a unit test compares them) without importing it
(docs/PERFORMANCE.md).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .errors import EngineError, ExitCode

T = TypeVar("T")

if TYPE_CHECKING:
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException

    from .environment import Environment

#: Documented minimum versions (docs/EXIT_CODES.md, preflight).
MIN_ENGINE_VERSION = (20, 10)
MIN_COMPOSE_VERSION = (2, 20)


class CallLog:
    """The docker command lines run in this process, for tests and benchmarks.

    ``len()`` counts every command since the process started; indexing and slicing use that
    same numbering but only the last :attr:`KEEP` command lines are kept. A plain list grew
    by about 1.7 kB per ``health --watch`` refresh (the inspect argv lists every container
    id): 1.8 MB over 1000 refreshes, without bound over a day of watching.
    """

    KEEP = 1000

    def __init__(self) -> None:
        self._recent: collections.deque[list[str]] = collections.deque(maxlen=self.KEEP)
        self._total = 0

    def append(self, cmd: list[str]) -> None:
        self._recent.append(cmd)
        self._total += 1

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[list[str]]:
        return iter(list(self._recent))

    @overload
    def __getitem__(self, index: int) -> list[str]: ...

    @overload
    def __getitem__(self, index: slice) -> list[list[str]]: ...

    def __getitem__(self, index: int | slice) -> list[str] | list[list[str]]:
        kept = list(self._recent)
        first = self._total - len(kept)  # the number of the oldest command still kept
        if isinstance(index, slice):
            start, stop, step = index.indices(self._total)
            return [kept[i - first] for i in range(start, stop, step) if i >= first]
        position = index + self._total if index < 0 else index
        if not first <= position < self._total:
            raise IndexError(f"command {index} is not kept (the last {self.KEEP} are)")
        return kept[position - first]


#: Every command line run through :func:`run` in this process (argv without secrets).
CALLS = CallLog()
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
    """A project error for a python-on-whales ``DockerException``, with its stderr (secrets
    scrubbed)."""
    return command_failure(
        [str(a) for a in exc.docker_command],
        exc.return_code,
        exc.stderr or "",
        scrub=scrub,
        what=what,
    )


def command_failure(
    argv: list[str], return_code: int, stderr: str, *, scrub: Any = None, what: str = ""
) -> EngineError:
    """A project error for a failed docker command, with its stderr (secrets scrubbed)."""
    stderr = stderr.strip()
    if scrub is not None:
        stderr = scrub(stderr)
    if "compose" in argv[1:2] and any(m in stderr for m in _COMPOSE_MISSING_MARKERS):
        return EngineError(
            COMPOSE_MISSING_MESSAGE, ExitCode.ENGINE_UNREACHABLE, command=argv, stderr=stderr
        )
    if any(marker in stderr for marker in _ENGINE_DOWN_MARKERS):
        return EngineError(
            ENGINE_DOWN_MESSAGE, ExitCode.ENGINE_UNREACHABLE, command=argv, stderr=stderr
        )
    last = stderr.splitlines()[-1] if stderr else f"exit code {return_code}"
    return EngineError(
        f"{what or 'docker'} failed: {last}",
        ExitCode.ENGINE_UNREACHABLE if not what else ExitCode.DEPLOY_FAILED,
        command=argv,
        stderr=stderr,
    )


_docker_path: str | None = None


def docker_binary() -> str:
    """The docker CLI's full path (as python-on-whales resolves it), ``docker`` when it is not
    on PATH (then :func:`run` says how to install it)."""
    global _docker_path
    if _docker_path is None:
        _docker_path = shutil.which("docker") or "docker"
    return _docker_path


#: How to get a Docker engine with compose v2, in every message that says one is missing.
GET_DOCKER = (
    "run scripts/setup (it installs and starts one on Debian), or install your distribution's "
    "docker.io and docker-compose (2.x) packages"
)
ENGINE_DOWN_MESSAGE = (
    "The Docker engine is not reachable; start it: run scripts/setup (scripts/docker-engine "
    "starts dockerd on Debian), then check `docker info`."
)
COMPOSE_MISSING_MESSAGE = (
    f"Docker Compose v2 (`docker compose`) is not installed; {GET_DOCKER}, then check "
    "`docker compose version`."
)
#: What the docker CLI says when the compose v2 plugin is absent.
_COMPOSE_MISSING_MARKERS = (
    "'compose' is not a docker command",
    "unknown command: docker compose",
    'unknown command "compose"',
)


def require_binary(binary: str) -> None:
    """Raise exit 5 with the fix when the docker CLI ``binary`` is not installed."""
    if shutil.which(binary) is None and not os.path.exists(binary):
        raise EngineError(
            f"Docker is not installed (no {binary!r} command); {GET_DOCKER}.",
            ExitCode.ENGINE_UNREACHABLE,
        )


def _decoded(stream: bytes | None) -> str:
    """Output as python-on-whales returns it: text, one trailing newline removed."""
    if not stream:
        return ""
    text = stream.decode(errors="replace")
    return text[:-1] if text.endswith("\n") else text


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
    require_binary(argv[0])
    _trace(argv)
    proc = subprocess.run(
        argv,
        input=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if capture_stderr else None,
        check=False,
    )
    if proc.returncode != 0:
        raise command_failure(
            argv, proc.returncode, _decoded(proc.stderr), scrub=scrub, what=what
        ) from None
    return _decoded(proc.stdout)


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

    def __init__(
        self, client: DockerClient | None = None, *, docker_cmd: Sequence[str] | None = None
    ) -> None:
        self._client = client
        if docker_cmd is not None:
            self._docker_cmd = [str(a) for a in docker_cmd]
        elif client is not None:
            self._docker_cmd = [str(a) for a in client.client_config.docker_cmd]
        else:
            self._docker_cmd = [docker_binary()]

    @property
    def client(self) -> DockerClient:
        """The python-on-whales client (imported on first use; :meth:`run` does not need it)."""
        if self._client is None:
            from python_on_whales import DockerClient

            self._client = DockerClient()
        return self._client

    @property
    def docker_cmd(self) -> list[str]:
        return list(self._docker_cmd)

    def run(self, *args: Any, **kwargs: Any) -> str:
        return run([*self.docker_cmd, *args], **kwargs)

    def info(self) -> EngineInfo:
        """One ``docker info`` and one ``docker compose version`` call."""
        versions: list[str] = []

        def compose_version() -> None:
            try:
                versions.append(self.run("compose", "version", "--short").strip())
            except EngineError:
                versions.append("")

        # `compose version` does not need the engine: it runs beside `docker info`.
        beside = threading.Thread(target=compose_version, name="compose-version", daemon=True)
        beside.start()
        try:
            raw = json.loads(self.run("info", "--format", "{{json .}}"))
        finally:
            beside.join()
        if raw.get("ServerErrors"):
            raise EngineError(
                ENGINE_DOWN_MESSAGE,
                ExitCode.ENGINE_UNREACHABLE,
                stderr="; ".join(raw["ServerErrors"]),
            )
        compose = versions[0] if versions else ""
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
        self._env_file: Path | None = None
        self._saved_config: dict[str, Any] | None = None

    @property
    def env_file(self) -> Path:
        """The private ``--env-file`` of this project (written once per project object)."""
        if self._env_file is None:
            # The secret files the compose `secrets:` of staging and prod point at, written
            # from the same resolved values (lakehouse_tasks.secretfiles).
            from .secretfiles import write_secret_files

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
        cmd = [docker_binary(), "compose"]
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
        return [docker_binary()]

    def compose(self, *args: Any, what: str = "", **kwargs: Any) -> str:
        """Run ``docker compose <args>`` for this project (through the choke point)."""
        return run([*self.compose_cmd, *args], scrub=self.env.scrub, what=what, **kwargs)

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

        require_binary(docker_binary())
        _trace([*self.compose_cmd, *preview])
        try:
            return call(self.client)
        except DockerException as exc:
            raise translate(exc, scrub=self.env.scrub, what=what) from None

    def down(self, *, remove_orphans: bool = True, volumes: bool = False) -> None:
        """``docker compose down``: containers and networks away; volumes only when asked."""
        preview = ["down", *(["--remove-orphans"] if remove_orphans else [])]
        preview += ["--volumes"] if volumes else []
        self.whales(
            preview,
            lambda c: c.compose.down(remove_orphans=remove_orphans, volumes=volumes, quiet=True),
            what="compose down",
        )

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

                if exc.message in (COMPOSE_MISSING_MESSAGE, ENGINE_DOWN_MESSAGE) or not exc.command:
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
_VARIABLE = __import__("re").compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
#: Saved configurations kept per state directory (the newest; others are removed).
CONFIG_CACHE_KEEP = 8


def _config_cache_key(compose: ComposeProject) -> str | None:
    """A digest of everything ``compose config`` reads, ``None`` when a file is unreadable."""
    import hashlib

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
    from .paths import state_dir

    return state_dir(compose.env.root) / "compose-config"


def _config_cache_path(compose: ComposeProject) -> Path | None:
    key = _config_cache_key(compose)
    return None if key is None else _config_cache_dir(compose) / f"{key}.json"


#: The password of a URL's user information (``scheme://user:PASSWORD@host``).
#: A ``$VAR`` reference (a shell script's, left for the container) is not a value.
_URL_PASSWORD = __import__("re").compile(r"(\b[A-Za-z][\w+.-]*://[^\s:/@]*:)(?!\$)([^\s@/]+)(@)")


def mask_secrets(config: Any, env: Environment) -> Any:
    """The merged compose configuration with secrets masked, and nothing else touched.

    Whole values only: the value of every key whose name is a secret (by the schema or by its
    name), in a service's ``environment`` or an extension field, and the password of a URL's user information
    (``postgresql://user:PASSWORD@host``). Images, volume names and commands stay as they are,
    however common the words of the dev secrets (``airflow``, ``hive``, ``admin``) are, so the
    output is still a valid compose file.
    """
    from .environment import MASK

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
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
        saved = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in saved[CONFIG_CACHE_KEEP:]:
            old.unlink(missing_ok=True)
    except OSError:
        return


# ---- health and preflight queries ----
# Each function below is ONE docker command line, whatever the number of containers: the
# health snapshot's call count must not grow with the stack (docs/HEALTH.md).

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"


def _json_lines(out: str) -> list[dict[str, Any]]:
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if line:
            rows.append(json.loads(line))
    return rows


def project_containers(docker_cmd: Sequence[str], project_name: str) -> list[dict[str, Any]]:
    """Every container (running or not) of a compose project: one ``docker ps -a`` call.

    Rows are ``docker ps --format '{{json .}}'`` objects (``ID``, ``Names``, ``State``, ...).
    """
    out = run(
        [
            *docker_cmd,
            "ps",
            "--all",
            "--no-trunc",
            "--filter",
            f"label={COMPOSE_PROJECT_LABEL}={project_name}",
            "--format",
            "{{json .}}",
        ]
    )
    return _json_lines(out)


def inspect_containers(docker_cmd: Sequence[str], ids: Sequence[str]) -> list[dict[str, Any]]:
    """``docker inspect`` of many containers in one call (state, health log, limits, mounts).

    A container removed between ``ps`` and ``inspect`` makes the whole call fail; only in
    that race is the call repeated once, without the containers docker named as gone.
    """
    if not ids:
        return []
    try:
        out = run([*docker_cmd, "container", "inspect", *ids])
    except EngineError as exc:
        if "No such" not in exc.stderr:
            raise
        gone = {line.rsplit(":", 1)[-1].strip() for line in exc.stderr.splitlines()}
        rest = [i for i in ids if i not in gone]
        if not rest or len(rest) == len(ids):
            return []
        try:
            out = run([*docker_cmd, "container", "inspect", *rest])
        except EngineError:
            return []
    return _json_list(out)


def _json_list(out: str) -> list[dict[str, Any]]:
    """The list an ``inspect`` prints as JSON (empty output or a non-list: none)."""
    data = json.loads(out or "[]")
    return list(data) if isinstance(data, list) else []


class CliStatsSample:
    """One ``docker stats --no-stream`` of ``ids`` running in the background (the engine takes
    two samples a second apart: about two seconds, whatever the number of containers), so a
    caller can do its other work meanwhile, or :meth:`cancel` it."""

    def __init__(self, docker_cmd: Sequence[str], ids: Sequence[str]) -> None:
        self.ids = tuple(str(i) for i in ids)
        self._argv = [
            *(str(a) for a in docker_cmd), "stats", "--no-stream", "--no-trunc",
            "--format", "{{json .}}", *self.ids,
        ]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        if self.ids:
            require_binary(self._argv[0])
            _trace(self._argv)
            self._proc = subprocess.Popen(
                self._argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )

    def rows(self) -> list[dict[str, Any]]:
        """The sampled rows (``ID``, ``CPUPerc``, ``MemUsage``, ...); none when a container
        went away meanwhile (``No such container``)."""
        if self._proc is None:
            return []
        out, err = self._proc.communicate()
        if self._proc.returncode != 0:
            stderr = _decoded(err)
            if "No such" in stderr:
                return []
            raise command_failure(self._argv, self._proc.returncode, stderr)
        return _json_lines(_decoded(out))

    def cancel(self) -> None:
        """Stop the sample if it still runs (nothing once :meth:`rows` has read it)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            self._proc.communicate()

    def __enter__(self) -> CliStatsSample:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cancel()


class StatsSample:
    """CPU and memory of ``ids`` sampled in the background: from the engine's API over its
    local socket (:mod:`lakehouse_tasks.engine_api`, about one second instead of
    ``docker stats``' two to three), else (another engine, or the API refused) one
    ``docker stats --no-stream`` (:class:`CliStatsSample`). ``state_file`` keeps the last
    sample so that the next snapshot needs one round of the engine's collector, not two."""

    def __init__(
        self, docker_cmd: Sequence[str], ids: Sequence[str], *, state_file: Path | None = None
    ) -> None:
        from . import engine_api

        self.ids = tuple(str(i) for i in ids)
        self._docker_cmd = [str(a) for a in docker_cmd]
        self._sample: Any
        path = engine_api.socket_path(self._docker_cmd) if self.ids else None
        if path is None:
            self._sample = CliStatsSample(self._docker_cmd, self.ids)
        else:
            self._sample = engine_api.ApiStatsSample(path, self.ids, state_file=state_file)

    def rows(self) -> list[dict[str, Any]]:
        """One row per sampled container: ``ID`` and either ``cpu_percent``, ``mem_used``,
        ``mem_limit`` (API) or ``CPUPerc``, ``MemUsage`` (CLI)."""
        try:
            return list(self._sample.rows())
        except OSError:  # the socket refused or broke: the CLI says the same, slower
            self._sample = CliStatsSample(self._docker_cmd, self.ids)
            return list(self._sample.rows())

    def cancel(self) -> None:
        self._sample.cancel()

    def __enter__(self) -> StatsSample:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cancel()


def running_port_bindings(docker_cmd: Sequence[str]) -> list[dict[str, Any]]:
    """Published ports of every running container on the engine: one ``docker ps`` call.

    Each row: ``container`` name, ``project`` (compose project label or ""), ``host_ip``,
    ``port`` (host side), ``protocol``.
    """
    out = run([*docker_cmd, "ps", "--format", "{{json .}}"])
    bindings: list[dict[str, Any]] = []
    for row in _json_lines(out):
        labels = _ps_labels(str(row.get("Labels", "")))
        for ip, port, proto in _ps_ports(str(row.get("Ports", ""))):
            bindings.append(
                {
                    "container": str(row.get("Names", "")),
                    "project": labels.get(COMPOSE_PROJECT_LABEL, ""),
                    "host_ip": ip,
                    "port": port,
                    "protocol": proto,
                }
            )
    return bindings


def _ps_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if sep:
            labels[key.strip()] = value
    return labels


def _ps_ports(text: str) -> list[tuple[str, int, str]]:
    """``[("0.0.0.0", 8080, "tcp"), ...]`` from ``0.0.0.0:8080->80/tcp, :::8080->80/tcp``."""
    found: list[tuple[str, int, str]] = []
    for part in text.split(","):
        part = part.strip()
        if "->" not in part:
            continue
        host, _arrow, target = part.partition("->")
        proto = target.rpartition("/")[2] or "tcp"
        ip, _colon, port_text = host.rpartition(":")
        ports = port_text.split("-")
        try:
            first, last = int(ports[0]), int(ports[-1])
        except ValueError:
            continue
        for port in range(first, last + 1):
            found.append((ip.strip("[]"), port, proto))
    return found


def manifest_available(docker_cmd: Sequence[str], reference: str) -> tuple[bool, str]:
    """Whether a registry serves ``reference`` (``docker manifest inspect``), and why not."""
    try:
        run([*docker_cmd, "manifest", "inspect", reference])
    except EngineError as exc:
        last = exc.stderr.splitlines()[-1] if exc.stderr else exc.message
        return False, last
    return True, ""


# ---- deploy and teardown operations ----
# Used by deploy.py and teardown.py. Containers are read in one ``docker ps`` plus one
# ``docker inspect`` call (IMAGE_FACTS: never one inspect per container).

_PROJECT_FILTER = "label=com.docker.compose.project="
_SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class ContainerState:
    """One container of a compose project, as ``docker inspect`` saw it at one moment."""

    id: str
    name: str
    service: str
    status: str  # created | running | restarting | exited | dead | paused | removing
    health: str  # healthy | unhealthy | starting | "" (no healthcheck)
    exit_code: int
    restart_count: int
    image_id: str
    image: str
    labels: dict[str, str]
    health_log: tuple[str, ...] = ()  # outputs of the last healthcheck runs, oldest first

    @property
    def oneshot(self) -> bool:
        return self.labels.get("io.lakehouse.oneshot", "").lower() == "true"


def _container_state(raw: dict[str, Any]) -> ContainerState:
    state = raw.get("State") or {}
    config = raw.get("Config") or {}
    labels = dict(config.get("Labels") or {})
    health = state.get("Health") or {}
    log = tuple(
        f"exit {entry.get('ExitCode')}: {str(entry.get('Output', '')).strip()}"
        for entry in (health.get("Log") or [])
    )
    return ContainerState(
        id=str(raw.get("Id", ""))[:12],
        name=str(raw.get("Name", "")).lstrip("/"),
        service=labels.get(_SERVICE_LABEL, ""),
        status=str(state.get("Status", "")),
        health=str(health.get("Status", "")),
        exit_code=int(state.get("ExitCode") or 0),
        restart_count=int(raw.get("RestartCount") or 0),
        image_id=str(raw.get("Image", "")),
        image=str(config.get("Image", "")),
        labels=labels,
        health_log=log,
    )


def container_states(
    compose: ComposeProject, *, project_name: str | None = None
) -> list[ContainerState]:
    """Every container (running or not) labelled with the compose project's name."""
    name = project_name or compose.project_name
    ids = run(
        [*compose.docker_cmd, "ps", "-a", "-q", "--no-trunc", "--filter", _PROJECT_FILTER + name],
        scrub=compose.env.scrub,
    ).split()
    if not ids:
        return []
    try:
        out = run([*compose.docker_cmd, "inspect", *ids], scrub=compose.env.scrub)
    except EngineError as exc:
        # A container removed between ps and inspect fails the whole call; the caller polls
        # again and sees a consistent list next time.
        if "No such" not in exc.stderr:
            raise
        return []
    states = (_container_state(raw) for raw in json.loads(out or "[]"))
    return sorted(states, key=lambda c: c.name)


def project_volumes(compose: ComposeProject, *, project_name: str | None = None) -> list[str]:
    """Names of the engine volumes that compose created for the project."""
    name = project_name or compose.project_name
    out = run(
        [*compose.docker_cmd, "volume", "ls", "-q", "--filter", _PROJECT_FILTER + name],
        scrub=compose.env.scrub,
    )
    return sorted(out.split())


def compose_logs(compose: ComposeProject, service: str, *, tail: int = 30) -> str:
    """The last ``tail`` log lines of one service, secrets scrubbed ("" when unavailable)."""
    try:
        out = compose.compose("logs", "--tail", str(tail), "--no-color", service)
    except EngineError as exc:
        return exc.stderr
    return compose.env.scrub(out)


class BackgroundCommand:
    """A docker command running in the background (``compose up -d`` blocks on depends_on
    conditions; the caller watches health meanwhile). stderr goes to a private temporary
    file, not a pipe, so a chatty command can never block on a full pipe."""

    def __init__(self, cmd: Sequence[Any], *, scrub: Any = None) -> None:
        import subprocess

        self.argv = [str(a) for a in cmd]
        require_binary(self.argv[0])
        _trace(self.argv)
        self._scrub = scrub
        self._stderr = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 (lives with the process)
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def poll(self) -> int | None:
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self._proc.wait(timeout)

    def terminate(self) -> None:
        """Stop the command (compose stops starting containers; running ones stay)."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except Exception:
                self._proc.kill()
                self._proc.wait()

    @property
    def stderr(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        return self._scrub(text) if self._scrub is not None else text


class ContainerEvents:
    """``docker events`` for one compose project's containers (start, die, health changes),
    read in a thread: :meth:`wait` returns as soon as one arrives, or after ``timeout``.

    A deploy waits with it instead of sleeping a fixed poll interval: the engine announces
    the moment a container turns healthy, so the deploy ends with the last healthy service
    rather than up to a poll later, and a quiet stack costs no docker call per second. One
    long-running command, whatever the number of services. If the command cannot run, the
    wait is a plain sleep (the caller's snapshots stay the source of truth).
    """

    #: The shortest time between two wake-ups, so a burst of events (compose starting a
    #: layer) becomes one snapshot rather than one per container.
    MIN_GAP = 0.2

    def __init__(self, docker_cmd: Sequence[str], project_name: str) -> None:
        self.argv = [
            *(str(a) for a in docker_cmd),
            "events",
            "--filter",
            "type=container",
            "--filter",
            f"label={COMPOSE_PROJECT_LABEL}={project_name}",
            # not the exec events every healthcheck makes: only what changes a row
            *("--filter", "event=start", "--filter", "event=die"),
            *("--filter", "event=health_status"),
            "--format",
            "{{.Status}}",
        ]
        self._arrived = threading.Event()
        self._proc: Any = None
        try:
            _trace(self.argv)
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return
        threading.Thread(target=self._read, name="docker-events", daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            if line.strip():
                self._arrived.set()

    def wait(self, timeout: float) -> None:
        """Return at the next event (but not sooner than :attr:`MIN_GAP`) or after
        ``timeout`` seconds."""
        gap = min(self.MIN_GAP, timeout)
        time.sleep(gap)
        self._arrived.wait(max(0.0, timeout - gap))
        self._arrived.clear()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def probe_passes(
    docker_cmd: Sequence[str], container: str, argv: Sequence[str], *, timeout: float
) -> bool:
    """Whether ``argv`` (a healthcheck test) exits 0 in ``container`` within ``timeout``
    seconds: one ``docker exec``, traced like every command."""
    cmd = [*(str(a) for a in docker_cmd), "exec", container, *(str(a) for a in argv)]
    _trace(cmd)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def compose_in_background(compose: ComposeProject, *args: Any) -> BackgroundCommand:
    """Start ``docker compose <args>`` for the project without waiting for it."""
    return BackgroundCommand([*compose.compose_cmd, *args], scrub=compose.env.scrub)


# ---- backup and restore streams ----
# Dumps and archives can be far larger than memory: they flow through a pipe in chunks of
# STREAM_CHUNK bytes, hashed (and gzip-compressed) on the fly. The argv is traced like every
# other command; stderr goes to a temporary file so a chatty command cannot deadlock the pipe.

import hashlib  # noqa: E402
import subprocess  # noqa: E402
import zlib  # noqa: E402

STREAM_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StreamResult:
    """What a stream wrote: bytes in the file, their sha256, bytes the command produced."""

    size: int
    sha256: str
    raw_size: int


def _stream_failure(argv: list[str], rc: int, err: Any, *, scrub: Any, what: str) -> EngineError:
    err.seek(0)
    stderr = err.read().decode("utf-8", errors="replace").strip()
    if scrub is not None:
        stderr = scrub(stderr)
    last = stderr.splitlines()[-1] if stderr else f"exit code {rc}"
    return EngineError(
        f"{what or argv[0]} failed: {last}",
        # the same rule as command_failure(): a named operation that fails is exit 4
        ExitCode.ENGINE_UNREACHABLE
        if any(m in stderr for m in _ENGINE_DOWN_MARKERS)
        else ExitCode.DEPLOY_FAILED,
        command=argv,
        stderr=stderr,
    )


def external_gzip() -> str | None:
    """The ``gzip`` program when installed: compressing in it runs on another core than the
    reading, hashing and writing here (the in-process zlib did all four on one, at about half
    the throughput of ``tar | gzip -1``; docs/PERFORMANCE.md)."""
    return shutil.which("gzip")


def stream_to_file(
    cmd: Sequence[Any],
    dest: Path,
    *,
    gzip_level: int | None = None,
    scrub: Any = None,
    what: str = "",
    on_chunk: Any = None,
) -> StreamResult:
    """Run ``cmd`` and write its stdout to ``dest`` (gzip-compressed when ``gzip_level`` is
    set), hashing what is written. Never holds more than a few chunks in memory.

    Compression runs in an external ``gzip -<level>`` when there is one (a thread feeds it
    the command's output and counts the raw bytes), else in zlib here; the file is gzip
    either way. ``on_chunk(n)`` is called with the number of raw bytes after each chunk
    (progress). A non-zero exit raises :class:`EngineError` with the command's stderr
    (scrubbed).
    """
    argv = [str(a) for a in cmd]
    _trace(argv)
    gzip_path = external_gzip() if gzip_level is not None else None
    compressor = (
        zlib.compressobj(gzip_level, zlib.DEFLATED, 31)
        if gzip_level is not None and gzip_path is None
        else None
    )
    # -n: no name or time stamp in the header, as the zlib path wrote it
    gzip_argv = [gzip_path or "gzip", f"-{gzip_level}", "-n", "-c"]
    digest = hashlib.sha256()
    size = raw = 0
    with (
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as zerr,
        open(dest, "wb") as fh,
    ):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        zproc: subprocess.Popen[bytes] | None = None
        feeder: threading.Thread | None = None
        fed = [0]  # raw bytes the feeder thread gave gzip
        reported = 0
        try:
            source = proc.stdout
            if gzip_path is not None:
                zproc = subprocess.Popen(
                    gzip_argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=zerr,
                )
                feeder = threading.Thread(
                    target=_feed, args=(proc.stdout, zproc.stdin, fed), name="gzip-feed"
                )
                feeder.start()
                assert zproc.stdout is not None
                source = zproc.stdout
            while True:
                chunk = source.read(STREAM_CHUNK)
                if not chunk:
                    break
                if zproc is None:
                    raw += len(chunk)
                data = compressor.compress(chunk) if compressor else chunk
                if data:
                    fh.write(data)
                    digest.update(data)
                    size += len(data)
                if on_chunk is not None:
                    done = fed[0] if zproc is not None else raw
                    if done > reported:
                        on_chunk(done - reported)
                        reported = done
            if compressor is not None:
                data = compressor.flush()
                fh.write(data)
                digest.update(data)
                size += len(data)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            proc.kill()
            if zproc is not None:
                zproc.kill()
            raise
        finally:
            if feeder is not None:
                feeder.join()
            proc.stdout.close()
            if zproc is not None and zproc.stdout is not None:
                zproc.stdout.close()
            proc.wait()
            if zproc is not None:
                zproc.wait()
        rc = proc.wait()
        if rc != 0:
            raise _stream_failure(argv, rc, err, scrub=scrub, what=what)
        if zproc is not None:
            raw = fed[0]
            if on_chunk is not None and raw > reported:
                on_chunk(raw - reported)
            if zproc.returncode != 0:
                raise _stream_failure(gzip_argv, zproc.returncode, zerr, scrub=scrub, what=what)
    return StreamResult(size=size, sha256=digest.hexdigest(), raw_size=raw)


def _feed(source: Any, sink: Any, fed: list[int]) -> None:
    """Copy ``source`` into ``sink`` chunk by chunk, counting in ``fed[0]``; close ``sink``
    at the end (a broken pipe means the reader died: its exit code says why)."""
    try:
        while True:
            chunk = source.read(STREAM_CHUNK)
            if not chunk:
                break
            sink.write(chunk)
            fed[0] += len(chunk)
    except (BrokenPipeError, ValueError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.close()


def stream_from_file(
    cmd: Sequence[Any],
    src: Path,
    *,
    gunzip: bool = False,
    scrub: Any = None,
    what: str = "",
    on_chunk: Any = None,
) -> int:
    """Run ``cmd`` with ``src`` (gunzipped on the fly when ``gunzip``) on its stdin; return
    the number of bytes fed. A non-zero exit raises :class:`EngineError` with its stderr."""
    argv = [str(a) for a in cmd]
    _trace(argv)
    fed = 0
    decompressor = zlib.decompressobj(31) if gunzip else None
    with tempfile.TemporaryFile() as err, open(src, "rb") as fh:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=err, stderr=err)
        assert proc.stdin is not None
        try:
            while True:
                chunk = fh.read(STREAM_CHUNK)
                if not chunk:
                    break
                data = decompressor.decompress(chunk) if decompressor else chunk
                if data:
                    proc.stdin.write(data)
                    fed += len(data)
                if on_chunk is not None:
                    on_chunk(len(chunk))
            if decompressor is not None:
                tail = decompressor.flush()
                if tail:
                    proc.stdin.write(tail)
                    fed += len(tail)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the command exited early: its exit code and stderr say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        rc = proc.wait()
        if rc != 0:
            raise _stream_failure(argv, rc, err, scrub=scrub, what=what)
    return fed


def pipe_commands(
    producer: Sequence[Any], consumer: Sequence[Any], *, scrub: Any = None, what: str = ""
) -> None:
    """``producer | consumer`` without a shell (copying one volume into another)."""
    out_argv = [str(a) for a in producer]
    in_argv = [str(a) for a in consumer]
    _trace([*out_argv, "|", *in_argv])
    with tempfile.TemporaryFile() as err1, tempfile.TemporaryFile() as err2:
        first = subprocess.Popen(
            out_argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err1
        )
        assert first.stdout is not None
        try:
            second = subprocess.Popen(in_argv, stdin=first.stdout, stdout=err2, stderr=err2)
        except BaseException:
            first.kill()
            first.wait()
            raise
        first.stdout.close()
        rc2 = second.wait()
        rc1 = first.wait()
        if rc1 != 0:
            raise _stream_failure(out_argv, rc1, err1, scrub=scrub, what=what)
        if rc2 != 0:
            raise _stream_failure(in_argv, rc2, err2, scrub=scrub, what=what)


# ---- logs and inspection for day-2 ----
# Used by logs.py and security.py. ``stream_lines`` is the streaming twin of :func:`run`: the
# argv is traced the same way, stdout is read line by line (``compose logs --follow`` never
# ends), stderr goes to a temporary file so it can never block the pipe.

import re as _re  # noqa: E402

_ANSI_ESCAPE = _re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal control sequences (compose emits some even with --no-color)."""
    return _ANSI_ESCAPE.sub("", text)


def stream_lines(cmd: Sequence[Any], *, scrub: Any = None, what: str = "") -> Iterable[str]:
    """Run ``cmd`` and yield each line of its stdout (no newline, ANSI stripped, scrubbed).

    Closing the generator (or Ctrl-C in the consumer) terminates the command. A non-zero exit
    after the output ends raises :class:`EngineError` with the command's stderr, scrubbed.
    """
    import subprocess as _subprocess

    argv = [str(a) for a in cmd]
    require_binary(argv[0])
    _trace(argv)
    with tempfile.TemporaryFile() as err:
        proc = _subprocess.Popen(
            argv, stdin=_subprocess.DEVNULL, stdout=_subprocess.PIPE, stderr=err
        )
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = strip_ansi(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
                yield scrub(line) if scrub is not None else line
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except _subprocess.TimeoutExpired:
                    proc.kill()
            proc.stdout.close()
        rc = proc.wait()
        if rc != 0:
            err.seek(0)
            stderr = err.read().decode("utf-8", errors="replace").strip()
            if scrub is not None:
                stderr = scrub(stderr)
            if any(marker in stderr for marker in _ENGINE_DOWN_MARKERS):
                raise EngineError(
                    ENGINE_DOWN_MESSAGE,
                    ExitCode.ENGINE_UNREACHABLE,
                    command=argv,
                    stderr=stderr,
                )
            last = strip_ansi(stderr).splitlines()[-1] if stderr else f"exit code {rc}"
            raise EngineError(
                f"{what or argv[0]} failed: {last}",
                ExitCode.ENGINE_UNREACHABLE,
                command=argv,
                stderr=stderr,
            )


def compose_log_lines(compose: ComposeProject, *args: Any) -> Iterable[str]:
    """``docker compose logs <args>`` of the project, line by line, secrets scrubbed."""
    return stream_lines(
        [*compose.compose_cmd, "--ansi", "never", "logs", *args],
        scrub=compose.env.scrub,
        what="docker compose logs",
    )


def local_image_users(
    docker_cmd: Sequence[str], references: Iterable[str]
) -> dict[str, str | None]:
    """The configured user (``Config.User``, "" = root) of each image present locally.

    Images absent locally map to ``None``. Two calls whatever the number of images: one
    ``docker image ls`` to learn which references exist, one ``docker image inspect``.
    """
    refs = sorted({r for r in references if r})
    result: dict[str, str | None] = dict.fromkeys(refs)
    if not refs:
        return result
    listed = run([*docker_cmd, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
    present_tags = set(listed.split())
    present = [r for r in refs if r in present_tags or f"{r}:latest" in present_tags]
    if not present:
        return result
    out = run(
        [
            *docker_cmd,
            "image",
            "inspect",
            "--format",
            "{{json .RepoTags}} {{json .Config.User}}",
            *present,
        ]
    )
    for line in out.splitlines():
        tags_text, _sep, user_text = line.strip().partition(" ")
        if not _sep:
            continue
        tags = set(json.loads(tags_text) or [])
        user = str(json.loads(user_text) or "")
        for ref in present:
            if ref in tags or f"{ref}:latest" in tags:
                result[ref] = user
    return result


# ---- swarm ----
# Used by swarm.py, the second deploy backend. A stack's services, tasks, networks and
# containers are found by the label ``docker stack deploy`` puts on everything it creates. Each
# query below is a constant number of docker calls whatever the number of services.

STACK_NAMESPACE_LABEL = "com.docker.stack.namespace"
#: Label the tool puts on the swarm secrets it creates (external to the stack file).
SECRET_STACK_LABEL = "io.lakehouse.stack"


def swarm_state(docker_cmd: Sequence[str]) -> tuple[str, bool]:
    """``(LocalNodeState, ControlAvailable)`` of the engine: ``("active", True)`` on a manager."""
    out = run([*docker_cmd, "info", "--format", "{{json .Swarm}}"])
    data = json.loads(out or "{}") or {}
    return str(data.get("LocalNodeState", "inactive")), bool(data.get("ControlAvailable"))


def swarm_init(docker_cmd: Sequence[str], *, advertise_addr: str = "127.0.0.1") -> None:
    """Make this engine a single-node swarm manager (``docker swarm init``)."""
    run([*docker_cmd, "swarm", "init", "--advertise-addr", advertise_addr], what="swarm init")


def swarm_leave(docker_cmd: Sequence[str]) -> None:
    """Leave the swarm (``--force``: also the last manager); a no-op outside a swarm."""
    try:
        run([*docker_cmd, "swarm", "leave", "--force"], what="swarm leave")
    except EngineError as exc:
        if "not part of a swarm" not in exc.stderr:
            raise


def swarm_nodes(docker_cmd: Sequence[str]) -> list[dict[str, Any]]:
    """``docker node inspect`` of every node: two calls (ls, inspect)."""
    ids = run([*docker_cmd, "node", "ls", "-q"], what="docker node ls").split()
    if not ids:
        return []
    data = json.loads(run([*docker_cmd, "node", "inspect", *ids], what="docker node inspect"))
    return list(data) if isinstance(data, list) else []


def label_node(docker_cmd: Sequence[str], label: str, *, node: str = "") -> None:
    """Add ``label`` (``key=value``) to a node's labels (default: the node we talk to;
    ``docker node update`` does not accept ``self``, so its id is asked first)."""
    if not node:
        node = run([*docker_cmd, "info", "--format", "{{.Swarm.NodeID}}"]).strip()
    run([*docker_cmd, "node", "update", "--label-add", label, node], what="docker node update")


def stack_deploy(
    docker_cmd: Sequence[str], stack: str, compose_file: Path, *, prune: bool, scrub: Any = None
) -> str:
    """``docker stack deploy`` of a generated stack file; images are never resolved remotely
    (no registry: the images must already be on the nodes)."""
    args = [*docker_cmd, "stack", "deploy", "--compose-file", str(compose_file)]
    args += ["--resolve-image", "never"]
    if prune:
        args.append("--prune")
    return run([*args, stack], scrub=scrub, what="docker stack deploy")


def stack_rm(docker_cmd: Sequence[str], stack: str) -> None:
    """``docker stack rm`` (returns at once; the engine removes tasks in the background)."""
    run([*docker_cmd, "stack", "rm", stack], what="docker stack rm")


def stack_services(docker_cmd: Sequence[str], stack: str) -> list[dict[str, Any]]:
    """``docker service inspect`` of every service of a stack: two calls (ls, inspect)."""
    ids = run(
        [
            *docker_cmd,
            "service",
            "ls",
            "-q",
            "--filter",
            f"label={STACK_NAMESPACE_LABEL}={stack}",
        ],
        what="docker service ls",
    ).split()
    if not ids:
        return []
    try:
        out = run([*docker_cmd, "service", "inspect", *ids], what="docker service inspect")
    except EngineError as exc:
        if "no such service" not in exc.stderr.lower():
            raise
        return []  # removed between ls and inspect: the caller polls again
    return _json_list(out)


def service_tasks(docker_cmd: Sequence[str], service_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every task (with its history) of these services, inspected: two calls (ps, inspect)."""
    if not service_ids:
        return []
    try:
        ids = run(
            [*docker_cmd, "service", "ps", "-q", "--no-trunc", *service_ids],
            what="docker service ps",
        ).split()
    except EngineError as exc:
        if "no such service" not in exc.stderr.lower():
            raise
        return []
    ids = list(dict.fromkeys(ids))
    if not ids:
        return []
    try:
        out = run([*docker_cmd, "inspect", "--type", "task", *ids], what="docker inspect")
    except EngineError as exc:
        # Swarm prunes old tasks between `service ps` and `inspect` while it updates or
        # scales: the caller polls again.
        low = exc.stderr.lower()
        if "no such" not in low and "not found" not in low:
            raise
        return []
    return _json_list(out)


def stack_networks(docker_cmd: Sequence[str], stack: str) -> list[str]:
    """Names of the networks a stack created: one call."""
    out = run(
        [
            *docker_cmd,
            "network",
            "ls",
            "--filter",
            f"label={STACK_NAMESPACE_LABEL}={stack}",
            "--format",
            "{{.Name}}",
        ]
    )
    return sorted(out.split())


def stack_containers(docker_cmd: Sequence[str], stack: str) -> list[str]:
    """Names of the stack's containers on the node we talk to (running or not): one call."""
    out = run(
        [
            *docker_cmd,
            "ps",
            "-a",
            "--filter",
            f"label={STACK_NAMESPACE_LABEL}={stack}",
            "--format",
            "{{.Names}}",
        ]
    )
    return sorted(out.split())


def service_logs(
    docker_cmd: Sequence[str], service: str, *, tail: int = 30, scrub: Any = None
) -> str:
    """The last log lines of a swarm service (all its tasks), "" when unavailable."""
    try:
        out = run(
            [*docker_cmd, "service", "logs", "--no-task-ids", "--tail", str(tail), service],
            scrub=scrub,
        )
    except EngineError as exc:
        return exc.stderr
    return scrub(out) if scrub is not None else out


def existing_volumes(docker_cmd: Sequence[str], names: Iterable[str]) -> list[str]:
    """Which of ``names`` exist as volumes on the node we talk to: one call."""
    wanted = set(names)
    if not wanted:
        return []
    out = run([*docker_cmd, "volume", "ls", "-q"])
    return sorted(wanted & set(out.split()))


def remove_volumes(docker_cmd: Sequence[str], names: Sequence[str]) -> None:
    if names:
        run([*docker_cmd, "volume", "rm", *names], what="docker volume rm")


def stack_secrets(docker_cmd: Sequence[str], stack: str) -> list[str]:
    """Names of the swarm secrets the tool created for a stack: one call."""
    out = run(
        [
            *docker_cmd,
            "secret",
            "ls",
            "--filter",
            f"label={SECRET_STACK_LABEL}={stack}",
            "--format",
            "{{.Name}}",
        ]
    )
    return sorted(out.split())


def create_secret(docker_cmd: Sequence[str], stack: str, name: str, value: str) -> None:
    """Create one swarm secret from ``value`` on stdin (it never touches the disk or argv)."""
    run(
        [*docker_cmd, "secret", "create", "--label", f"{SECRET_STACK_LABEL}={stack}", name, "-"],
        input=value.encode(),
        scrub=lambda text: text.replace(value, "********") if value else text,
        what="docker secret create",
    )


def remove_secrets(docker_cmd: Sequence[str], names: Sequence[str]) -> list[str]:
    """Remove secrets; those still used by a service are kept and returned."""
    kept: list[str] = []
    for name in names:
        try:
            run([*docker_cmd, "secret", "rm", name], what="docker secret rm")
        except EngineError as exc:
            if "in use" not in exc.stderr:
                raise
            kept.append(name)
    return kept


#: Label swarm puts on a task's container: the full service name (``<stack>_<service>``).
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"


def stack_running_containers(docker_cmd: Sequence[str], stack: str) -> list[tuple[str, str]]:
    """``(service, container id)`` of every running task container of a stack on the node we
    talk to (``service`` without the ``<stack>_`` prefix), oldest first: one call."""
    out = run(
        [
            *docker_cmd,
            "ps",
            "--filter",
            f"label={STACK_NAMESPACE_LABEL}={stack}",
            "--filter",
            "status=running",
            "--format",
            f'{{{{.ID}}}} {{{{.Label "{SWARM_SERVICE_LABEL}"}}}}',
        ]
    )
    prefix = f"{stack}_"
    found = []
    for line in reversed(out.splitlines()):  # docker ps lists newest first
        parts = line.split()
        if len(parts) == 2:
            name = parts[1][len(prefix) :] if parts[1].startswith(prefix) else parts[1]
            found.append((name, parts[0]))
    return found


def service_replicas(docker_cmd: Sequence[str], services: Sequence[str]) -> dict[str, int]:
    """Replica count in the spec of each (full-named) replicated service: one call."""
    if not services:
        return {}
    out = run(
        [
            *docker_cmd,
            "service",
            "inspect",
            "--format",
            "{{.Spec.Name}} {{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}"
            "{{else}}-1{{end}}",
            *services,
        ],
        what="docker service inspect",
    )
    replicas: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            replicas[parts[0]] = int(parts[1])
    return replicas


def service_scale(docker_cmd: Sequence[str], replicas: Mapping[str, int]) -> None:
    """``docker service scale --detach NAME=N ...`` (returns at once; callers wait)."""
    if replicas:
        run(
            [
                *docker_cmd,
                "service",
                "scale",
                "--detach",
                *(f"{name}={n}" for name, n in sorted(replicas.items())),
            ],
            what="docker service scale",
        )
