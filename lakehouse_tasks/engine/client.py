"""The Docker engine outside any compose project: versions, ``docker info``, image ids."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import EngineError, ExitCode
from . import executor

T = TypeVar("T")

if TYPE_CHECKING:
    from python_on_whales import DockerClient

#: Documented minimum versions (docs/EXIT_CODES.md, preflight).
MIN_ENGINE_VERSION = (20, 10)
MIN_COMPOSE_VERSION = (2, 20)


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
            self._docker_cmd = [executor.docker_binary()]

    @property
    def client(self) -> DockerClient:
        """The python-on-whales client (imported on first use; :meth:`run` does not need it)."""
        if self._client is None:
            from python_on_whales import DockerClient

            self._client = DockerClient(client_call=self.docker_cmd)
        return self._client

    def whales(
        self,
        preview: Sequence[str],
        call: Callable[[DockerClient], T],
        *,
        what: str,
        scrub: Any = None,
    ) -> T:
        """Run one python-on-whales call on the engine (outside any compose project): traced
        and counted as ``docker <preview>``, its ``DockerException`` translated by the one
        error translation (:func:`.executor.translate`)."""
        from python_on_whales.exceptions import DockerException

        executor.require_binary(self._docker_cmd[0])
        executor._trace([*self._docker_cmd, *preview])
        try:
            return call(self.client)
        except DockerException as exc:
            raise executor.translate(exc, what=what, scrub=scrub) from None

    @property
    def docker_cmd(self) -> list[str]:
        return list(self._docker_cmd)

    def run(self, *args: Any, **kwargs: Any) -> str:
        return executor.run([*self.docker_cmd, *args], **kwargs)

    def server_version(self) -> str:
        """The engine's version (``docker version``): raises exit 5 when there is no docker
        CLI or no engine answering it."""
        return self.run("version", "--format", "{{.Server.Version}}").strip()

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
                executor.ENGINE_DOWN_MESSAGE,
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
