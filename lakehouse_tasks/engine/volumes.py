"""Volumes: list, create, remove, and what the tool does inside them through throw-away
containers of the stack's own images (sizes, archives, restores, copies, checksums).

A throw-away container runs ``--rm --network none --user 0:0`` with the volumes mounted under
``/v`` (or ``/from`` and ``/to``) and the entrypoint named here; the image is one of the
stack's own (the caller picks one with ``tar`` and ``find``, :func:`image_has_tools`), never
pulled.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import EngineError
from . import api, executor, fifos, streams
from .containers import COMPOSE_PROJECT_LABEL

if TYPE_CHECKING:
    from .compose import ComposeProject

T = TypeVar("T")


def _docker() -> list[str]:
    return [executor.docker_binary()]


def project_volumes(compose: ComposeProject, *, project_name: str | None = None) -> list[str]:
    """Names of the engine volumes that compose created for the project."""
    name = project_name or compose.project_name
    out = executor.run(
        [
            *compose.docker_cmd,
            "volume",
            "ls",
            "-q",
            "--filter",
            f"label={COMPOSE_PROJECT_LABEL}={name}",
        ],
        scrub=compose.env.scrub,
    )
    return sorted(out.split())


def existing_volumes(docker_cmd: Sequence[str], names: Iterable[str]) -> list[str]:
    """Which of ``names`` exist as volumes on the node we talk to: one call."""
    wanted = set(names)
    if not wanted:
        return []
    out = executor.run([*docker_cmd, "volume", "ls", "-q"])
    return sorted(wanted & set(out.split()))


def remove_volumes(docker_cmd: Sequence[str], names: Sequence[str]) -> None:
    if names:
        executor.run([*docker_cmd, "volume", "rm", *names], what="docker volume rm")


def volume_names() -> set[str]:
    """Every volume on the engine: one call."""
    out = executor.run([*_docker(), "volume", "ls", "--format", "{{.Name}}"])
    return {line.strip() for line in out.splitlines() if line.strip()}


def labelled(label: str, value: str) -> list[str]:
    """Volumes labelled ``label=value``: one call."""
    out = executor.run([*_docker(), "volume", "ls", "-q", "--filter", f"label={label}={value}"])
    return out.split()


def create(name: str, *, labels: Mapping[str, str] | None = None) -> None:
    """``docker volume create`` with ``labels``."""
    argv = [*_docker(), "volume", "create"]
    for key, value in (labels or {}).items():
        argv += ["--label", f"{key}={value}"]
    executor.run([*argv, name], what="docker volume create")


def remove(names: Sequence[str], *, force: bool = False) -> None:
    """``docker volume rm`` of ``names`` (one call)."""
    if names:
        argv = [*_docker(), "volume", "rm", *(["-f"] if force else []), *names]
        executor.run(argv, what="docker volume rm")


# ---- throw-away containers ----
def throwaway_argv(
    image: str, mounts: Sequence[str], entrypoint: str, *args: str, stdin: bool = False
) -> list[str]:
    """``docker run --rm [-i] --network none --user 0:0 -v MOUNT... --entrypoint E IMAGE ARGS``."""
    argv = [*_docker(), "run", *(["-i"] if stdin else []), "--rm", "--network", "none"]
    argv += ["--user", "0:0"]
    for mount in mounts:
        argv += ["-v", mount]
    return [*argv, "--entrypoint", entrypoint, image, *args]


def run_throwaway(
    image: str, mounts: Sequence[str], entrypoint: str, *args: str, scrub: Any = None,
    what: str = "",
) -> str:  # fmt: skip
    """Run one throw-away container to its end; its stdout."""
    return executor.run(throwaway_argv(image, mounts, entrypoint, *args), scrub=scrub, what=what)


def image_has_tools(image: str) -> bool:
    """Whether ``image`` runs ``tar`` and ``find`` as root (two throw-away containers)."""
    try:
        run_throwaway(image, [], "tar", "-cf", "/dev/null", "-C", "/etc", "hostname")
        run_throwaway(image, [], "find", "/etc", "-maxdepth", "0")
    except EngineError:
        return False
    return True


def disk_usage(image: str, names: Sequence[str]) -> list[int]:
    """Bytes used by each of the volumes ``names`` (``du -sk``, one throw-away container)."""
    if not names:
        return []
    mounts = [f"{name}:/v/{i}:ro" for i, name in enumerate(names)]
    out = run_throwaway(image, mounts, "du", "-sk", *(f"/v/{i}" for i in range(len(names))))
    sizes = [0] * len(names)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].startswith("/v/"):
            sizes[int(parts[1][3:])] = int(parts[0]) * 1024
    return sizes


def any_files(image: str, names: Sequence[str]) -> bool:
    """Whether any of the volumes ``names`` holds an entry (one throw-away container)."""
    if not names:
        return False
    mounts = [f"{name}:/v/{i}:ro" for i, name in enumerate(names)]
    return bool(
        run_throwaway(image, mounts, "find", "/v", "-mindepth", "2", "-maxdepth", "2").strip()
    )


def file_checksums(image: str, volume: str) -> dict[str, str]:
    """sha256 of every regular file in ``volume``, by relative path (one throw-away container)."""
    out = run_throwaway(
        image, [f"{volume}:/v:ro"], "sh", "-c", "cd /v && find . -type f -exec sha256sum {} +"
    )
    sums: dict[str, str] = {}
    for line in out.splitlines():
        digest, sep, name = line.partition("  ")
        if sep:
            sums[name.removeprefix("./")] = digest.lstrip("\\")
    return sums


#: ``0`` turns the FIFO path of :func:`archive_to_file` off (every archive then streams
#: through the container's stdout).
FIFO_ENV = "LAKEHOUSE_VOLUME_FIFO"


def fifo_usable() -> bool:
    """Whether a throw-away container can write into a FIFO on this host: the engine is
    local (:func:`.api.local_socket`: no context, no ``DOCKER_HOST`` other than a unix
    socket) and the path is not turned off. A remote daemon would bind-mount a directory of
    its own host, and ``tar`` would write the whole archive into a file there."""
    if os.environ.get(FIFO_ENV, "1") == "0" or not hasattr(os, "mkfifo"):
        return False
    return api.local_socket() is not None


def archive_to_file(
    image: str, volume: str, dest: Path, *, gzip_level: int | None = None,
    compress_argv: Sequence[str] | None = None, scrub: Any = None, what: str = "",
    on_chunk: Any = None,
) -> streams.StreamResult:  # fmt: skip
    """The content of ``volume`` as a tar stream into ``dest``, compressed
    (:func:`.streams.stream_to_file`) and hashed.

    With a local engine, ``tar`` writes into a FIFO on this host, bind-mounted into its
    container: a container's stdout reaches ``docker run`` through the daemon's attach
    stream, about 15 MB/s on the reference machine, the FIFO 180 MB/s (1 GiB in 74 s
    against 6 s; docs/PERFORMANCE.md). When the container never opens the FIFO (a daemon
    that does not see this host's paths), the archive streams through stdout as before.
    """
    kw: dict[str, Any] = dict(
        gzip_level=gzip_level, compress_argv=compress_argv, scrub=scrub, what=what,
        on_chunk=on_chunk,
    )  # fmt: skip
    return _through_fifo(
        lambda tmp, fifo: streams.stream_to_file(
            throwaway_argv(
                image, [f"{volume}:/v:ro", f"{tmp}:/out"], "tar", "-C", "/v", "-cf",
                "/out/volume.tar", ".",
            ),
            dest, fifo=fifo, **kw,
        ),
        lambda: streams.stream_to_file(
            throwaway_argv(image, [f"{volume}:/v:ro"], "tar", "-C", "/v", "-cf", "-", "."),
            dest, **kw,
        ),
    )  # fmt: skip


def extract_from_file(
    image: str, volume: str, src: Path, *, gunzip: bool = False,
    decompress_argv: Sequence[str] | None = None, scrub: Any = None, what: str = "",
    on_chunk: Any = None,
) -> int:  # fmt: skip
    """Unpack the tar archive ``src`` into ``volume``; the bytes fed. With a local engine
    ``tar -xf`` reads a FIFO on this host (as :func:`archive_to_file` writes one: a
    container's stdin through ``docker run -i`` is the daemon's attach stream too), else, or
    when the container never opens it, its stdin (``tar -C /v -xf -``)."""
    kw: dict[str, Any] = dict(
        gunzip=gunzip, decompress_argv=decompress_argv, scrub=scrub, what=what,
        on_chunk=on_chunk,
    )  # fmt: skip
    return _through_fifo(
        lambda tmp, fifo: streams.stream_into_fifo(
            throwaway_argv(
                image, [f"{volume}:/v", f"{tmp}:/out"], "tar", "-C", "/v", "-xf",
                "/out/volume.tar",
            ),
            fifo, src, **kw,
        ),
        lambda: streams.stream_from_file(
            throwaway_argv(image, [f"{volume}:/v"], "tar", "-C", "/v", "-xf", "-", stdin=True),
            src, **kw,
        ),
    )  # fmt: skip


def _through_fifo(via_fifo: Callable[[str, Path], T], via_stdio: Callable[[], T]) -> T:
    """``via_fifo(directory, fifo)`` with a private FIFO (:func:`_fifo_dir`, mounted into the
    container as ``/out``) when :func:`fifo_usable`; ``via_stdio()`` otherwise, and when the
    container never opened the FIFO (:class:`.fifos.FifoUnused`: nothing was streamed)."""
    if fifo_usable():
        with _fifo_dir() as (tmp, fifo):
            try:
                return via_fifo(tmp, fifo)
            except fifos.FifoUnused:
                pass
    return via_stdio()


@contextlib.contextmanager
def _fifo_dir() -> Iterator[tuple[str, Path]]:
    """A private temporary directory holding the FIFO ``volume.tar``: the directory 0711 (a
    container's root reaches the FIFO, nobody lists it), the FIFO 0600; removed after."""
    with tempfile.TemporaryDirectory(prefix="lakehouse-archive-") as tmp:
        os.chmod(tmp, 0o711)
        fifo = Path(tmp) / "volume.tar"
        os.mkfifo(fifo, 0o600)
        yield tmp, fifo


def clear(image: str, volume: str) -> None:
    """Remove every entry of ``volume`` (``-exec rm -rf {} ;``: busybox's find has no ``-delete``)."""
    run_throwaway(
        image, [f"{volume}:/v"], "find", "/v", "-mindepth", "1", "-maxdepth", "1",
        "-exec", "rm", "-rf", "{}", ";",
    )  # fmt: skip


def copy(image: str, src: str, dst: str, *, scrub: Any = None, what: str = "") -> None:
    """Copy every file of volume ``src`` into ``dst`` (owners, modes, links kept).

    One container mounting both volumes copies on the engine's disk (``cp -a``); the bytes
    then never cross the docker CLI, where ``tar | tar`` through two attached containers took
    about as long as the restore itself (docs/PERFORMANCE.md). An image without ``cp`` falls
    back to that tar pipe, after clearing ``dst`` (a partial copy must not mix with it).
    """
    try:
        run_throwaway(
            image, [f"{src}:/from:ro", f"{dst}:/to"], "cp", "-a", "/from/.", "/to/",
            scrub=scrub, what=what,
        )  # fmt: skip
        return
    except EngineError:
        clear(image, dst)
    streams.pipe_commands(
        throwaway_argv(image, [f"{src}:/v:ro"], "tar", "-C", "/v", "-cf", "-", "."),
        throwaway_argv(image, [f"{dst}:/v"], "tar", "-C", "/v", "-xf", "-", stdin=True),
        scrub=scrub,
        what=what,
    )
