"""The engine package's executor: every docker command line runs here.

:func:`run` is the single choke point: it logs the command when ``LAKEHOUSE_TRACE_DOCKER=1``,
counts it (tests and benchmarks read :data:`CALLS`), and turns a failure into
:class:`~lakehouse_tasks.errors.EngineError` carrying the command's stderr with every secret
scrubbed (:func:`command_failure`, the one error translation; :func:`translate` applies it to a
python-on-whales ``DockerException``). :class:`BackgroundCommand` and :func:`stream_lines` are
its long-running twins (a background ``compose up``, ``compose logs --follow``); the streams
of :mod:`.streams` trace and translate through the same functions.

The argv builders live by docker noun beside this module (``compose``, ``containers``,
``volumes``, ``images``, ``swarm``); the rest of the package calls them with data.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from ..errors import EngineError, ExitCode

if TYPE_CHECKING:
    from python_on_whales.exceptions import DockerException


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


def api_failure(what: str, exc: OSError, *, fix: str = "check `docker info`") -> EngineError:
    """A project error (exit 5) for an engine that did not answer ``what``, an API request over
    its local socket (:mod:`.api`): the request's side of :func:`command_failure`."""
    return EngineError(
        f"The Docker engine did not answer {what} ({exc}); {fix}.", ExitCode.ENGINE_UNREACHABLE
    )


def command_failure(
    argv: list[str],
    return_code: int,
    stderr: str,
    *,
    scrub: Any = None,
    what: str = "",
    code: ExitCode | None = None,
) -> EngineError:
    """A project error for a failed docker command, with its stderr (secrets scrubbed): the
    package's one error translation (python-on-whales' ``DockerException`` through
    :func:`translate`, the streams of :mod:`.streams` and :func:`stream_lines` all end here;
    an API request that got no answer ends in :func:`api_failure`).

    No compose plugin and an unreachable engine get their own message and exit 5. Otherwise the
    message names ``what`` failed with the last line of stderr, and the exit code is ``code``,
    else 4 for a named operation and 5 for an anonymous query."""
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
    last = strip_ansi(stderr).splitlines()[-1] if stderr else f"exit code {return_code}"
    if code is None:
        code = ExitCode.ENGINE_UNREACHABLE if not what else ExitCode.DEPLOY_FAILED
    return EngineError(f"{what or 'docker'} failed: {last}", code, command=argv, stderr=stderr)


def failure_from_file(
    argv: list[str], return_code: int, err: Any, *, scrub: Any = None, what: str = "",
    code: ExitCode | None = None,
) -> EngineError:  # fmt: skip
    """:func:`command_failure` of a command whose stderr went to the temporary file ``err``."""
    err.seek(0)
    stderr = err.read().decode("utf-8", errors="replace")
    return command_failure(argv, return_code, stderr, scrub=scrub, what=what or argv[0], code=code)


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
    env: Mapping[str, str] | None = None,
) -> str:
    """Run one docker command line and return its stdout; the project's choke point.

    ``env``: variables added to this process's environment for the command (the rehearsal's
    ``DOCKER_BUILDKIT=0``)."""
    argv = [str(a) for a in cmd]
    require_binary(argv[0])
    _trace(argv)
    proc = subprocess.run(
        argv,
        input=input,
        env=None if env is None else {**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if capture_stderr else None,
        check=False,
    )
    if proc.returncode != 0:
        raise command_failure(
            argv, proc.returncode, _decoded(proc.stderr), scrub=scrub, what=what
        ) from None
    return _decoded(proc.stdout)


def json_lines(out: str) -> list[dict[str, Any]]:
    """One JSON object a line (``--format '{{json .}}'``), blank lines skipped."""
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if line:
            rows.append(json.loads(line))
    return rows


def json_list(out: str) -> list[dict[str, Any]]:
    """The list an ``inspect`` prints as JSON (empty output or a non-list: none)."""
    data = json.loads(out or "[]")
    return list(data) if isinstance(data, list) else []


class BackgroundCommand:
    """A docker command running in the background (``compose up -d`` blocks on depends_on
    conditions; the caller watches health meanwhile). stderr goes to a private temporary
    file, not a pipe, so a chatty command can never block on a full pipe."""

    def __init__(self, cmd: Sequence[Any], *, scrub: Any = None) -> None:
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


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal control sequences (compose emits some even with --no-color)."""
    return _ANSI_ESCAPE.sub("", text)


def stream_lines(
    cmd: Sequence[Any], *, scrub: Any = None, what: str = "", stdin: Path | None = None
) -> Iterable[str]:
    """Run ``cmd`` and yield each line of its stdout (no newline, ANSI stripped, scrubbed);
    ``stdin``: a file fed to the command.

    Closing the generator (or Ctrl-C in the consumer) terminates the command. A non-zero exit
    after the output ends raises :class:`EngineError` with the command's stderr, scrubbed.
    """
    argv = [str(a) for a in cmd]
    require_binary(argv[0])
    _trace(argv)
    with (
        tempfile.TemporaryFile() as err,
        open(stdin, "rb") if stdin is not None else contextlib.nullcontext() as source,
    ):
        proc = subprocess.Popen(
            argv, stdin=source or subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
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
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.stdout.close()
        rc = proc.wait()
        if rc != 0:
            # a read path (logs): exit 5 whatever failed, as the queries of run()
            raise failure_from_file(
                argv, rc, err, scrub=scrub, what=what, code=ExitCode.ENGINE_UNREACHABLE
            )
