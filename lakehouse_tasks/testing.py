"""pytest helpers for lakehouse-ops and for authors of its plugins (a pytest11 plugin).

Fixtures defined here are available to any test suite that installs lakehouse-ops.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import hookimpl

if TYPE_CHECKING:
    from .environment import Environment
    from .events import Event
    from .hooks.manager import LakehousePlugins
    from .project import Project


@pytest.fixture
def lakehouse_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A throw-away project directory (``compose/`` + ``env/``) with LAKEHOUSE_HOME set to it.

    Tests write the env files and compose files they need into it.
    """
    (tmp_path / "compose").mkdir()
    (tmp_path / "env").mkdir()
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_STATE_DIR", str(tmp_path / ".lakehouse"))
    yield tmp_path


def write_env(root: Path, name: str, values: dict[str, Any], *, local: bool = False) -> Path:
    """Write ``env/<name>.env`` (or ``.local.env``) from a mapping."""
    path = root / "env" / (f"{name}.local.env" if local else f"{name}.env")
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


# ---- for plugin authors ---------------------------------------------------------------------
@dataclass(frozen=True)
class HookCall:
    """One hook call a :class:`RecordingPlugin` received: the hook's name and its arguments."""

    hook: str
    kwargs: dict[str, Any]


class RecordingPlugin:
    """A plugin that implements every hook, records each call and contributes nothing.

    ``calls`` lists every :class:`HookCall` in order; ``events`` the events it received;
    ``called(hook)`` the calls of one hook (``"lakehouse_event"`` or just ``"event"``).
    """

    def __init__(self) -> None:
        self.calls: list[HookCall] = []

    def _record(self, hook: str, **kwargs: Any) -> None:
        self.calls.append(HookCall(hook, kwargs))

    def called(self, hook: str) -> list[HookCall]:
        name = hook if hook.startswith("lakehouse_") else f"lakehouse_{hook}"
        return [call for call in self.calls if call.hook == name]

    @property
    def events(self) -> list[Event]:
        return [call.kwargs["event"] for call in self.called("lakehouse_event")]

    @hookimpl
    def lakehouse_compose_files(self, env: Environment, rehearsal: bool) -> None:
        self._record("lakehouse_compose_files", env=env, rehearsal=rehearsal)

    @hookimpl
    def lakehouse_access_urls(self, env: Environment) -> None:
        self._record("lakehouse_access_urls", env=env)

    @hookimpl
    def lakehouse_preflight_checks(self, project: Project) -> None:
        self._record("lakehouse_preflight_checks", project=project)

    @hookimpl
    def lakehouse_pre_deploy(self, project: Project, services: list[str]) -> None:
        self._record("lakehouse_pre_deploy", project=project, services=services)

    @hookimpl
    def lakehouse_post_deploy(self, project: Project, result: Any) -> None:
        self._record("lakehouse_post_deploy", project=project, result=result)

    @hookimpl
    def lakehouse_post_teardown(self, project: Project, result: Any) -> None:
        self._record("lakehouse_post_teardown", project=project, result=result)

    @hookimpl
    def lakehouse_health_snapshot(self, project: Project, snapshot: Any) -> None:
        self._record("lakehouse_health_snapshot", project=project, snapshot=snapshot)

    @hookimpl
    def lakehouse_event(self, event: Event, env: Environment | None) -> None:
        self._record("lakehouse_event", event=event, env=env)

    @hookimpl
    def lakehouse_backup_artefacts(self, project: Project, workdir: Path) -> None:
        self._record("lakehouse_backup_artefacts", project=project, workdir=workdir)

    @hookimpl
    def lakehouse_post_backup(self, project: Project, manifest_path: Path) -> None:
        self._record("lakehouse_post_backup", project=project, manifest_path=manifest_path)

    @hookimpl
    def lakehouse_backup_copies(self, env: Environment) -> None:
        self._record("lakehouse_backup_copies", env=env)

    @hookimpl
    def lakehouse_fetch_backup(self, env: Environment, backup_id: str, dest: Path) -> None:
        self._record("lakehouse_fetch_backup", env=env, backup_id=backup_id, dest=dest)

    @hookimpl
    def lakehouse_verify_copies(self, env: Environment, read_data_subset: str | None) -> None:
        self._record("lakehouse_verify_copies", env=env, read_data_subset=read_data_subset)

    @hookimpl
    def lakehouse_post_prune(self, env: Environment, result: Any) -> None:
        self._record("lakehouse_post_prune", env=env, result=result)

    @hookimpl
    def lakehouse_status_checks(self, env: Environment) -> None:
        self._record("lakehouse_status_checks", env=env)


PluginsFactory = Callable[..., "LakehousePlugins"]


@pytest.fixture
def lakehouse_plugins() -> Iterator[PluginsFactory]:
    """A factory for a fresh plugin manager holding the plugins you give it.

    ``lakehouse_plugins(plugin, ..., builtins=False, entry_points=False)`` returns a new
    :class:`~lakehouse_tasks.hooks.manager.LakehousePlugins` with each plugin registered (source
    "local"; pass ``(name, plugin)`` tuples to choose names) and installs it as the process's
    manager, so code calling ``get_plugin_manager()`` uses it. Afterwards the cached manager
    is reset. Keyword arguments go to ``LakehousePlugins`` (``disabled=``, ``strict=``,
    ``trace=``); by default built-ins and installed entry points are left out.
    """
    from .hooks.manager import LakehousePlugins, set_plugin_manager

    def build(
        *plugins: object, builtins: bool = False, entry_points: bool = False, **options: Any
    ) -> LakehousePlugins:
        manager = LakehousePlugins(builtins=builtins, entry_points=entry_points, **options)
        for plugin in plugins:
            if isinstance(plugin, tuple):
                name, obj = plugin
                manager.register(obj, name=name)
            else:
                manager.register(plugin)
        set_plugin_manager(manager)
        return manager

    yield build
    set_plugin_manager(None)


_HANDED_OUT: set[int] = set()


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on this host, never one handed out before in this
    process (the kernel may offer a just-closed port again; two services of one test stack,
    or two stacks of one test run, must not get the same one)."""
    import socket

    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
            port = int(sock.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def free_port() -> int:
    """One free TCP port (see :func:`free_ports`)."""
    return free_ports(1)[0]


# ---- a fake deployment target ----------------------------------------------------------------
@dataclass
class FakeBackend:
    """A :class:`~lakehouse_tasks.backends.base.Backend` without an engine, for unit tests of
    the lifecycle (and of plugins that observe it): it records each call in ``calls`` and
    answers from its fields. ``name`` picks the rules it plays (``"swarm"``: no history, hard
    reservations, ``--pull`` refused); ``fail`` makes ``apply`` fail naming those services;
    ``snapshots`` are the health snapshots ``snapshot`` answers, one per call in order (an
    exception in the list is raised instead, e.g. ``KeyboardInterrupt`` for Ctrl-C);
    ``restarting`` are the services the engine is bringing back (neither up nor at rest;
    one may be in ``running`` too, for the moment of an attempt); ``images`` (service ->
    image id) is what the history records of a deploy; ``logs`` are the raw lines
    (``service-1 | text``) ``log_lines`` streams."""

    name: str = "compose"
    running: list[str] = field(default_factory=list)
    restarting: list[str] = field(default_factory=list)
    fail: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    snapshots: list[Any] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def keeps_history(self) -> bool:
        return self.name == "compose"

    @property
    def hard_reservations(self) -> bool:
        return self.name != "compose"

    @property
    def unsupported_flags(self) -> Mapping[str, str]:
        from .backends import backend_named

        return backend_named(self.name).unsupported_flags if self.name != "fake" else {}

    # lifecycle
    def ready(self, project: Project, services: Sequence[str]) -> list[str]:
        self.calls.append(("ready", list(services)))
        return sorted(services or project.stack.active)

    def preview(self, project: Project, options: Any) -> Any:
        self.calls.append(("preview", options))
        return {"dry_run": True}

    def apply(self, project: Project, services: Sequence[str], options: Any, reporter: Any) -> Any:
        from .outcomes import ServiceProgress, WaitOutcome

        self.calls.append(("apply", list(services)))
        rows = [ServiceProgress(s, 1, False, "healthy", done=s not in self.fail) for s in services]
        failures = [(s, "unhealthy") for s in services if s in self.fail]
        return WaitOutcome(ok=not failures, rows=rows, failures=failures)

    def failure_details(self, project: Project, failures: Sequence[tuple[str, str]]) -> list[Any]:
        from .outcomes import ServiceFailure

        return [ServiceFailure(service=s, reason=r) for s, r in failures]

    def remove(self, project: Project, *, volumes: bool, notify: Callable[[str], None]) -> Any:
        from .outcomes import TeardownResult

        self.calls.append(("remove", volumes))
        before = list(self.volumes)
        if volumes:
            self.volumes.clear()
        return TeardownResult(
            environment=project.env.name,
            project_name=project.compose.project_name,
            remove_volumes=volumes,
            volumes_before=before,
            volumes_after=list(self.volumes),
        )

    # inspection and data protection
    def watcher(self) -> Callable[..., Any]:
        self.calls.append(("watcher", None))
        return self.snapshot

    def snapshot(self, project: Project, *, resources: bool = True, services: Any = None) -> Any:
        self.calls.append(("snapshot", services))
        if not self.snapshots:
            raise NotImplementedError("FakeBackend has no (more) health snapshots scripted")
        answer = self.snapshots.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def running_services(self, project: Project) -> list[str]:
        return sorted(self.running)

    def restarting_services(self, project: Project) -> dict[str, str]:
        return {s: "restarting" for s in self.restarting}

    def exec_target(self, project: Project, service: str) -> str:
        return f"fake-{service}"

    def replicas(self, project: Project, services: Sequence[str]) -> dict[str, int]:
        return {s: 1 for s in services} if self.name != "compose" else {}

    def stop(self, project: Project, services: Sequence[str]) -> None:
        self.calls.append(("stop", list(services)))
        self.running = [s for s in self.running if s not in services]
        self.restarting = [s for s in self.restarting if s not in services]

    def start(
        self,
        project: Project,
        services: Sequence[str],
        replicas: Mapping[str, int],
        *,
        unsettled: Collection[str] = (),
    ) -> set[str]:
        self.calls.append(("start", list(services)))
        if unsettled:  # back to their crash loop, not waited for
            self.calls.append(("start unsettled", sorted(unsettled)))
            self.restarting = sorted(set(self.restarting) | set(unsettled))
        self.running = sorted(set(self.running) | (set(services) - set(unsettled)))
        return set()

    def wait_healthy(
        self,
        project: Project,
        services: Sequence[str],
        *,
        timeout: float = 0.0,
        what: str = "",
        confirmed: Iterable[str] = (),
    ) -> set[str]:
        self.calls.append(("wait_healthy", list(services)))
        return set(confirmed)

    def create_volume(self, project: Project, key: str, volume: str) -> None:
        self.calls.append(("create_volume", volume))
        self.volumes.append(volume)

    # records and logs
    def running_images(self, project: Project) -> dict[str, str]:
        return dict(self.images)

    def log_lines(self, project: Project, args: Sequence[str]) -> Iterable[str]:
        self.calls.append(("log_lines", list(args)))
        return list(self.logs)  # raw, as given: stream_logs scrubs whatever feeds it
