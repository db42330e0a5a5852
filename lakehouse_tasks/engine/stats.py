"""CPU and memory samples of many containers, taken in the background: from the containers'
cgroup files when the engine runs on this host (:mod:`.cgroups`, a quarter of a second), else
from the engine's API over its local socket (:mod:`.api`, about a second), else one
``docker stats --no-stream`` (two to three seconds)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import api, cgroups, executor


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
            executor.require_binary(self._argv[0])
            executor._trace(self._argv)
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
            stderr = executor._decoded(err)
            if "No such" in stderr:
                return []
            raise executor.command_failure(self._argv, self._proc.returncode, stderr)
        return executor.json_lines(executor._decoded(out))

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
    local socket (:mod:`.api`, about one second instead of
    ``docker stats``' two to three), else (another engine, or the API refused) one
    ``docker stats --no-stream`` (:class:`CliStatsSample`). ``state_file`` keeps the last
    sample so that the next snapshot needs one round of the engine's collector, not two."""

    def __init__(
        self, docker_cmd: Sequence[str], ids: Sequence[str], *, state_file: Path | None = None
    ) -> None:
        self.ids = tuple(str(i) for i in ids)
        self._docker_cmd = [str(a) for a in docker_cmd]
        self._sample: Any
        path = api.socket_path(self._docker_cmd) if self.ids else None
        if path is None:
            self._sample = CliStatsSample(self._docker_cmd, self.ids)
        elif cgroups.enabled():
            # the engine is on this host: its containers' cgroup files, the API for the rest
            self._sample = cgroups.CgroupStatsSample(
                self.ids,
                fallback=lambda missing: api.ApiStatsSample(path, missing, state_file=state_file),
            )
        else:
            self._sample = api.ApiStatsSample(path, self.ids, state_file=state_file)

    def rows(self) -> list[dict[str, Any]]:
        """One row per sampled container: ``ID`` and either ``cpu_percent``, ``mem_used``,
        ``mem_limit`` (API) or ``CPUPerc``, ``MemUsage`` (CLI)."""
        try:
            return list(self._sample.rows())
        except api.SOCKET_REFUSED:  # the CLI says the same, slower
            self._sample = CliStatsSample(self._docker_cmd, self.ids)
            return list(self._sample.rows())
        except OSError as exc:
            raise executor.api_failure(
                "a stats request", exc, fix="check `docker info`, or run health with --no-resources"
            ) from None

    def cancel(self) -> None:
        self._sample.cancel()

    def __enter__(self) -> StatsSample:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cancel()
