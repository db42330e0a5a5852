"""Commands on and in containers: ``exec`` (output, streamed to and from files, line by line,
or judged by the caller), ``run -d``, ``stop``, ``start``, ``rm``, ``logs``."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import executor, streams


def _docker() -> list[str]:
    return [executor.docker_binary()]


def exec_output(container: str, *argv: str, scrub: Any = None, what: str = "") -> str:
    """``docker exec <container> <argv>``: its stdout (a failure raises EngineError)."""
    return executor.run([*_docker(), "exec", container, *argv], scrub=scrub, what=what)


def exec_to_file(
    container: str, argv: Sequence[str], dest: Path, *, scrub: Any = None, what: str = "",
    on_chunk: Any = None,
) -> streams.StreamResult:  # fmt: skip
    """``docker exec <container> <argv> > dest``, streamed and hashed (a database dump)."""
    return streams.stream_to_file(
        [*_docker(), "exec", container, *argv], dest, scrub=scrub, what=what, on_chunk=on_chunk
    )


def exec_from_file(
    container: str, argv: Sequence[str], src: Path, *, scrub: Any = None, what: str = "",
    on_chunk: Any = None,
) -> int:  # fmt: skip
    """``docker exec -i <container> <argv> < src`` (a dump restored); the bytes fed."""
    return streams.stream_from_file(
        [*_docker(), "exec", "-i", container, *argv], src, scrub=scrub, what=what,
        on_chunk=on_chunk,
    )  # fmt: skip


def exec_lines(
    container: str, argv: Sequence[str], *, stdin: Path | None = None, what: str = ""
) -> Iterable[str]:
    """``docker exec -i <container> <argv> [< stdin]``, its stdout line by line."""
    return executor.stream_lines(
        [*_docker(), "exec", "-i", container, *argv], stdin=stdin, what=what
    )


def run_detached(
    image: str,
    *,
    labels: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    network: str = "none",
) -> str:
    """``docker run -d`` of ``image`` (its own entrypoint and command); the container id."""
    argv = [*_docker(), "run", "-d", "--network", network]
    for key, value in (labels or {}).items():
        argv += ["--label", f"{key}={value}"]
    for key, value in (environment or {}).items():
        argv += ["-e", f"{key}={value}"]
    scrub = _hiding((environment or {}).values())
    return executor.run([*argv, image], scrub=scrub, what=f"docker run of {image}").strip()


def _hiding(values: Iterable[str]) -> Any:
    secrets = [v for v in values if len(v) >= 8]

    def scrub(text: str) -> str:
        for value in secrets:
            text = text.replace(value, "********")
        return text

    return scrub


def stop(ids: Sequence[str], *, docker_cmd: Sequence[str] | None = None) -> None:
    """``docker stop`` of ``ids`` (one call)."""
    if ids:
        executor.run([*(docker_cmd or _docker()), "stop", *ids], what="docker stop")


def start(container: str, *, docker_cmd: Sequence[str] | None = None) -> None:
    """``docker start`` of one container."""
    executor.run([*(docker_cmd or _docker()), "start", container], what="docker start")


def remove(ids: Sequence[str], *, volumes: bool = True) -> None:
    """``docker rm -f`` of ``ids`` (with their anonymous volumes unless ``volumes=False``)."""
    if ids:
        executor.run([*_docker(), "rm", "-f", *(["-v"] if volumes else []), *ids], what="docker rm")


def labelled(label: str, value: str) -> list[str]:
    """Ids of every container (running or not) labelled ``label=value``: one call."""
    out = executor.run([*_docker(), "ps", "-aq", "--filter", f"label={label}={value}"])
    return out.split()


def exec_completed(
    container: str,
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = 120.0,
    docker_cmd: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``docker exec [-i] <container> <argv>`` with a text ``stdin``, judged by the caller: a
    non-zero exit does not raise (a smoke check reads the output either way); a command
    still running after ``timeout`` seconds raises ``subprocess.TimeoutExpired``."""
    cmd = [*(docker_cmd or _docker()), "exec", *(["-i"] if stdin is not None else [])]
    cmd += [container, *argv]
    executor.require_binary(cmd[0])
    executor._trace(cmd)
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)


def logs(container: str, *, tail: int = 200, docker_cmd: Sequence[str] | None = None) -> str:
    """The last ``tail`` log lines of one container (its stdout and stderr), "" when docker
    cannot give them."""
    cmd = [*(docker_cmd or _docker()), "logs", "--tail", str(tail), container]
    executor._trace(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return proc.stdout + proc.stderr
