"""Open an environment as a compose project: the glue every lifecycle task starts with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .engine.compose import ComposeProject
from .environment import Environment, load_environment
from .hooks.manager import get_plugin_manager
from .stack import Stack


@dataclass
class Project:
    """An environment, its compose project and (lazily) its merged stack."""

    env: Environment
    compose: ComposeProject
    rehearsal: bool

    @property
    def stack(self) -> Stack:
        cached = getattr(self, "_stack", None)
        if cached is None:
            cached = Stack.from_config(self.compose.config())
            self._stack = cached
        return cached

    def stack_for_reading(self) -> Stack:
        """The stack for a read-only look (a health snapshot): :attr:`stack` when it has been
        read, else the one of the saved merged configuration when its inputs have not changed
        (``ComposeProject.config_for_reading``), which spares a ``compose config`` call."""
        if getattr(self, "_stack", None) is not None:
            return self.stack
        cached = getattr(self, "_reading_stack", None)
        if cached is None:
            config = self.compose.config_for_reading()
            if self.compose.read_afresh:
                return self.stack
            cached = Stack.from_config(config)
            self._reading_stack = cached
        return cached


def profiles_for(env: Environment) -> list[str]:
    """Compose profiles the environment turns on (the TLS proxy when certificates exist)."""
    profiles: list[str] = []
    mode = (env.get("HTTPS_MODE") or "disabled").lower()
    cert, key = env.get("TLS_CERT_FILE") or "", env.get("TLS_KEY_FILE") or ""
    if (
        mode == "optional"
        and cert
        and key
        and _resolve(env, cert).exists()
        and _resolve(env, key).exists()
    ):
        profiles.append("tls")
    return profiles


def _resolve(env: Environment, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else env.root / p


def plugin_compose_files(env: Environment, rehearsal: bool = False) -> list[Path]:
    """Compose files contributed by plugins (the monitoring stack joins this way)."""
    return [Path(p) for p in get_plugin_manager().compose_files(env=env, rehearsal=rehearsal)]


def open_project(
    name: str,
    *,
    rehearsal: bool = False,
    env_files: Iterable[str] = (),
    strict: bool = True,
    project_name: str | None = None,
    root: Path | None = None,
) -> Project:
    from .confighash import inputs_key, labels_file

    env = load_environment(name, env_files=env_files, strict=strict, root=root)
    files = env.compose_files(rehearsal=rehearsal, extra=plugin_compose_files(env, rehearsal))
    compose = ComposeProject(
        env=env, files=files, profiles=profiles_for(env), project_name=project_name or ""
    )
    # Last: the tool's configuration-hash label of every service (lakehouse_tasks.confighash).
    inputs = inputs_key(compose.files, compose.profiles)
    compose.files.append(labels_file(env.root, compose.project_name, inputs))
    return Project(env=env, compose=compose, rehearsal=rehearsal)


def stamp_config_hashes(project: Project) -> dict[str, str]:
    """Bring the label file up to date with the merged configuration before an ``up``; the
    project's cached configuration and stack are re-read when the file changed."""
    from .confighash import service_hashes, write_labels

    hashes = service_hashes(project.compose.config())
    path = project.compose.files[-1]
    if path.parent.name == "config-hash" and write_labels(path, hashes):
        project.compose.config(refresh=True)
        project.__dict__.pop("_stack", None)
        project.__dict__.pop("_reading_stack", None)
    return hashes
