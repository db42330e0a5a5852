"""The plugin manager and its typed facade (modelled on tox 4's ``plugin/manager.py``).

The rest of the code never touches ``pm.hook``: it calls :func:`get_plugin_manager` and one
method per hook of :class:`LakehousePlugins`, which forwards keyword arguments, checks what
plugins return and applies the failure policy.

Where plugins come from, in registration order:

1. **built-in** plugins from :mod:`lakehouse_tasks.hooks.builtin` (the host's own behaviour,
   registered like any plugin so a third party can block or extend it);
2. **entry point** plugins: every entry point in the ``lakehouse_tasks`` group of the
   installed distributions;
3. **local** plugins registered in-process with :meth:`LakehousePlugins.register` (tests, the
   ``lakehouse_plugins`` pytest fixture, embedding code).

Environment switches:

* ``LAKEHOUSE_DISABLE_PLUGINS=name1,name2``: block plugins by name (built-ins included);
* ``LAKEHOUSE_TRACE_HOOKS=1``: trace every hook call and its result to stderr (pluggy tracing);
* ``LAKEHOUSE_STRICT_PLUGINS=1``: a plugin that cannot be loaded is fatal (exit 2).

Failure policy:

* a plugin that fails to import or to register (unknown hook, wrong argument name, wrapper
  implementation) is reported on stderr by name and skipped; in strict mode it is a
  ``LakehouseError`` (exit 2);
* an exception in a **gating** hook (``preflight_checks``, ``pre_deploy``) and in the contributing
  hooks whose result must be exact (``compose_files``, ``backup_artefacts``) stops the task
  with a ``LakehouseError`` naming the plugin and the exception, without a traceback;
* an exception in an **observer** hook (``event``, ``post_deploy``, ``post_teardown``,
  ``health_snapshot``, ``post_backup``, and ``access_urls``) is reported on stderr with the
  plugin's name; the task continues and the other plugins still get the call.

To apply that policy per plugin, each implementation is called on its own (through pluggy's
``subset_hook_caller``, so tracing still sees every call), in pluggy's usual order:
``tryfirst`` first, then last-registered first.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from .. import PROJECT_NAME, __version__
from ..checks import Check
from ..errors import ExitCode, LakehouseError, StateDirError
from ..parsing import parse_names
from ..paths import state_dir_failure
from . import specs
from .types import AccessURL, BackupCopy, ExtraArtefact, PluginInfo

if TYPE_CHECKING:
    from ..environment import Environment
    from ..events import Event
    from ..project import Project

#: The entry-point group third-party plugins register under.
ENTRY_POINT_GROUP = PROJECT_NAME

ENV_DISABLE = "LAKEHOUSE_DISABLE_PLUGINS"
ENV_TRACE = "LAKEHOUSE_TRACE_HOOKS"
ENV_STRICT = "LAKEHOUSE_STRICT_PLUGINS"

SOURCE_BUILTIN = "built-in"
SOURCE_ENTRY_POINT = "entry point"
SOURCE_LOCAL = "local"

#: Each hook and the facade method that calls it.
FACADE_METHODS: dict[str, str] = {
    "lakehouse_compose_files": "compose_files",
    "lakehouse_access_urls": "access_urls",
    "lakehouse_preflight_checks": "preflight_checks",
    "lakehouse_pre_deploy": "pre_deploy",
    "lakehouse_post_deploy": "post_deploy",
    "lakehouse_post_teardown": "post_teardown",
    "lakehouse_health_snapshot": "health_snapshot",
    "lakehouse_event": "emit",
    "lakehouse_backup_artefacts": "backup_artefacts",
    "lakehouse_post_backup": "post_backup",
    "lakehouse_backup_copies": "backup_copies",
    "lakehouse_fetch_backup": "fetch_backup",
    "lakehouse_verify_copies": "verify_copies",
    "lakehouse_post_prune": "post_prune",
    "lakehouse_status_checks": "status_checks",
}


# ---- the manager ----------------------------------------------------------------------------
def _env_names(value: str | None) -> set[str]:
    return set(parse_names(value))


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _stderr_write(text: str) -> None:
    # Resolved at call time so redirected or captured stderr is honoured.
    sys.stderr.write(text)
    sys.stderr.flush()


def _describe_exception(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class LakehousePlugins:
    """The typed facade over pluggy: one method per hook, with the failure policy applied.

    Build it with :func:`get_plugin_manager` (cached per process); build a private one with
    ``LakehousePlugins(builtins=..., entry_points=...)`` (tests).
    """

    def __init__(
        self,
        *,
        builtins: bool = True,
        entry_points: bool = True,
        disabled: Iterable[str] | None = None,
        strict: bool | None = None,
        trace: bool | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(specs)
        self.strict = _env_flag(ENV_STRICT) if strict is None else strict
        self.disabled = frozenset(
            _env_names(os.environ.get(ENV_DISABLE)) if disabled is None else disabled
        )
        self._warn = warn or (lambda text: _stderr_write(f"warning: {text}\n"))
        self._sources: dict[str, str] = {}
        self._versions: dict[str, str] = {}
        self._details: dict[str, str] = {}
        self._failures: list[PluginInfo] = []
        for name in self.disabled:
            self.pm.set_blocked(name)
        if _env_flag(ENV_TRACE) if trace is None else trace:
            self.pm.trace.root.setwriter(_stderr_write)
            self.pm.enable_tracing()
        if builtins:
            self._register_builtins()
        if entry_points:
            self.load_entry_points()

    # ---- registration -------------------------------------------------------------------
    def _register_builtins(self) -> None:
        from .builtin import builtin_plugins

        for name, plugin in builtin_plugins():
            self._add(plugin, name, SOURCE_BUILTIN, __version__, "lakehouse-ops")

    def load_entry_points(
        self, entry_points: Iterable[importlib.metadata.EntryPoint] | None = None
    ) -> list[str]:
        """Load and register the ``lakehouse_tasks`` entry points; return the loaded names.

        Each entry point is loaded on its own so one that fails to import is reported by name
        and skipped (fatal in strict mode) instead of stopping the others.
        """
        if entry_points is None:
            entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        loaded = []
        for ep in entry_points:
            if self.pm.is_blocked(ep.name) or self.pm.has_plugin(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            version = getattr(dist, "version", "") or "-"
            dist_name = getattr(dist, "name", "") or ""
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(
                    ep.name,
                    SOURCE_ENTRY_POINT,
                    version,
                    f"cannot be imported ({_describe_exception(exc)})",
                )
                continue
            if self._add(plugin, ep.name, SOURCE_ENTRY_POINT, version, dist_name):
                loaded.append(ep.name)
        return loaded

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object in-process (source "local"); return its name.

        A plugin that cannot be registered raises ``LakehouseError`` (exit 2): the caller
        asked for it explicitly.
        """
        if name is None:
            base = getattr(plugin, "__name__", None) or type(plugin).__name__
            name, n = base, 1
            while self.pm.has_plugin(name):
                n += 1
                name = f"{base}-{n}"
        if self.pm.is_blocked(name):
            return name
        version = str(getattr(plugin, "__version__", "") or "-")
        self._add(plugin, name, SOURCE_LOCAL, version, "", raise_on_error=True)
        return name

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)
        self._sources.pop(name, None)

    def _add(
        self,
        plugin: object,
        name: str,
        source: str,
        version: str,
        detail: str,
        *,
        raise_on_error: bool = False,
    ) -> bool:
        if self.pm.is_blocked(name):
            return False
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy.PluginValidationError, duplicate names, ...
            reason = f"cannot be registered ({_describe_exception(exc)})"
            if raise_on_error:
                raise LakehouseError(f"Plugin {name!r} {reason}; fix the plugin.") from None
            self._fail(name, source, version, reason)
            return False
        problem = self._validate(name)
        if problem:
            self.pm.unregister(plugin, name=name)
            if raise_on_error:
                raise LakehouseError(f"Plugin {name!r} {problem}; fix the plugin.")
            self._fail(name, source, version, problem)
            return False
        self._sources[name] = source
        self._versions[name] = version
        self._details[name] = detail
        return True

    def _validate(self, name: str) -> str:
        """Why a just-registered plugin cannot be used ("" when it can)."""
        plugin = self.pm.get_plugin(name)
        for caller in self.pm.get_hookcallers(plugin) or []:
            mine = [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]
            if not caller.has_spec() and not all(impl.optionalhook for impl in mine):
                known = ", ".join(sorted(FACADE_METHODS))
                return f"implements unknown hook {caller.name!r} (known hooks: {known})"
            for impl in mine:
                if impl.hookwrapper or impl.wrapper:
                    return (
                        f"implements {caller.name!r} as a wrapper, which lakehouse-ops does not "
                        "support (plugins are called one by one)"
                    )
        return ""

    def _fail(self, name: str, source: str, version: str, reason: str) -> None:
        if self.strict:
            raise LakehouseError(
                f"Plugin {name!r} {reason}; fix or uninstall it, or unset {ENV_STRICT}.",
                ExitCode.BAD_INPUT,
            )
        self._failures.append(PluginInfo(name, version, source, (), "failed", reason))
        self._warn(
            f"plugin {name!r} {reason} and was skipped "
            f"(set {ENV_DISABLE}={name} to silence this, {ENV_STRICT}=1 to make it fatal)"
        )

    # ---- introspection ------------------------------------------------------------------
    def describe(self) -> list[PluginInfo]:
        """Every plugin: active ones in registration order, then failed and disabled ones."""
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None or name not in self._sources:
                continue
            hooks = tuple(
                sorted(c.name for c in self.pm.get_hookcallers(plugin) or [] if c.has_spec())
            )
            infos.append(
                PluginInfo(
                    name,
                    self._versions.get(name, "-"),
                    self._sources[name],
                    hooks,
                    "active",
                    self._details.get(name, ""),
                )
            )
        infos.extend(self._failures)
        for name in sorted(self.disabled):
            infos.append(PluginInfo(name, "-", "-", (), "disabled", f"blocked by {ENV_DISABLE}"))
        return infos

    def plugin(self, name: str) -> object | None:
        """The registered plugin object called ``name`` (None if absent or blocked)."""
        return self.pm.get_plugin(name)

    @property
    def names(self) -> list[str]:
        return [name for name, plugin in self.pm.list_name_plugin() if plugin is not None]

    # ---- calling ------------------------------------------------------------------------
    def _each(
        self, hook_name: str, kwargs: dict[str, Any]
    ) -> Iterable[tuple[str, Callable[[], Any]]]:
        """(plugin name, call) per implementation, in pluggy's call order."""
        caller = getattr(self.pm.hook, hook_name)
        firstresult = bool(caller.spec and caller.spec.opts.get("firstresult"))
        impls = caller.get_hookimpls()
        plugins = [impl.plugin for impl in impls]
        # get_hookimpls() lists implementations in reverse call order (pluggy calls from the end).
        for impl in reversed(impls):
            subset = self.pm.subset_hook_caller(
                hook_name, [p for p in plugins if p is not impl.plugin]
            )

            def call(subset: Any = subset, plugin_name: str = impl.plugin_name) -> Any:
                # Names the plugin in the trace (a no-op unless LAKEHOUSE_TRACE_HOOKS is set).
                self.pm.trace.root.get("hook")(f"{hook_name}: calling plugin {plugin_name!r}")
                result = subset(**kwargs)
                if firstresult:  # already the value itself
                    return result
                return result[0] if result else None

            yield impl.plugin_name, call

    def _observe(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation; report and skip the ones that raise."""
        results = []
        for name, call in self._each(hook_name, kwargs):
            try:
                results.append((name, call()))
            except Exception as exc:
                self._warn(
                    f"plugin {name!r} failed in {hook_name}: {_describe_exception(exc)} "
                    "(ignored; the task continues)"
                )
        return results

    def _gate(
        self, hook_name: str, exit_code: ExitCode, **kwargs: Any
    ) -> Iterable[tuple[str, Any]]:
        """Call every implementation; the first exception stops the task, naming the plugin."""
        for name, call in self._each(hook_name, kwargs):
            try:
                result = call()
            except StateDirError:
                raise  # the state directory is not writable: not the plugin's fault
            except LakehouseError as exc:
                raise LakehouseError(
                    f"Plugin {name!r} stopped the task: {exc.message}", exc.exit_code
                ) from None
            except OSError as exc:
                failure = state_dir_failure(exc)
                if failure is not None:
                    raise failure from None
                raise LakehouseError(
                    f"Plugin {name!r} failed in {hook_name}: {_describe_exception(exc)}; "
                    f"fix the plugin or disable it with {ENV_DISABLE}={name}.",
                    exit_code,
                ) from None
            except Exception as exc:
                raise LakehouseError(
                    f"Plugin {name!r} failed in {hook_name}: {_describe_exception(exc)}; "
                    f"fix the plugin or disable it with {ENV_DISABLE}={name}.",
                    exit_code,
                ) from None
            yield name, result

    @staticmethod
    def _as_list(name: str, hook_name: str, value: Any, exit_code: ExitCode) -> list[Any]:
        if value is None:
            return []
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise LakehouseError(
                f"Plugin {name!r} returned {type(value).__name__} from {hook_name}, "
                "which must return a list; fix the plugin.",
                exit_code,
            )
        return list(value)

    # ---- configuration hooks ------------------------------------------------------------
    def compose_files(self, *, env: Environment, rehearsal: bool = False) -> list[Path]:
        """Compose files contributed by plugins, each checked to exist."""
        hook = "lakehouse_compose_files"
        files: list[Path] = []
        for name, value in self._gate(hook, ExitCode.BAD_INPUT, env=env, rehearsal=rehearsal):
            for item in self._as_list(name, hook, value, ExitCode.BAD_INPUT):
                path = Path(item).expanduser()
                if not path.is_absolute():
                    path = env.root / path
                if not path.is_file():
                    raise LakehouseError(
                        f"Plugin {name!r} added compose file {path}, which does not exist; "
                        f"reinstall the plugin or disable it with {ENV_DISABLE}={name}.",
                        ExitCode.BAD_INPUT,
                    )
                files.append(path)
        return files

    def access_urls(self, *, env: Environment) -> list[AccessURL]:
        """Every web interface's URL; a failing plugin's URLs are left out (with a warning)."""
        urls: list[AccessURL] = []
        for name, value in self._observe("lakehouse_access_urls", env=env):
            for item in value or []:
                if isinstance(item, AccessURL):
                    urls.append(item)
                else:
                    self._warn(
                        f"plugin {name!r} returned {item!r} from lakehouse_access_urls, not an AccessURL (ignored)"
                    )
        return urls

    # ---- deploy hooks -------------------------------------------------------------------
    def preflight_checks(self, *, project: Project) -> list[Check]:
        """Plugin checks, each with ``source`` set to the plugin's name."""
        hook = "lakehouse_preflight_checks"
        checks: list[Check] = []
        for name, value in self._gate(hook, ExitCode.PREFLIGHT_FAILED, project=project):
            for item in self._as_list(name, hook, value, ExitCode.PREFLIGHT_FAILED):
                if not isinstance(item, Check):
                    raise LakehouseError(
                        f"Plugin {name!r} returned {item!r} from {hook}, not a Check; "
                        "fix the plugin.",
                        ExitCode.PREFLIGHT_FAILED,
                    )
                checks.append(dataclasses.replace(item, source=name))
        return checks

    def pre_deploy(self, *, project: Project, services: Sequence[str]) -> None:
        """Ask every plugin whether the deploy may go ahead; raise on the first veto."""
        hook = "lakehouse_pre_deploy"
        for name, reason in self._gate(
            hook, ExitCode.DEPLOY_FAILED, project=project, services=list(services)
        ):
            if reason is not None:
                raise LakehouseError(
                    f"Deploy vetoed by plugin {name!r}: {str(reason).rstrip('.')}.",
                    ExitCode.DEPLOY_FAILED,
                )

    def post_deploy(self, *, project: Project, result: Any) -> None:
        self._observe("lakehouse_post_deploy", project=project, result=result)

    def post_teardown(self, *, project: Project, result: Any) -> None:
        self._observe("lakehouse_post_teardown", project=project, result=result)

    # ---- runtime hooks ------------------------------------------------------------------
    def health_snapshot(self, *, project: Project, snapshot: Any) -> None:
        self._observe("lakehouse_health_snapshot", project=project, snapshot=snapshot)

    def emit(self, event: Event, *, env: Environment | None = None) -> None:
        """Give ``event`` (about ``env``, when the producer has it) to every plugin's
        ``lakehouse_event``."""
        self._observe("lakehouse_event", event=event, env=env)

    # ---- backup hooks -------------------------------------------------------------------
    def backup_artefacts(self, *, project: Project, workdir: Path) -> list[ExtraArtefact]:
        """Extra artefacts, each checked to be a file inside ``workdir``."""
        hook = "lakehouse_backup_artefacts"
        code = ExitCode.INTEGRITY_FAILED
        root = Path(workdir).resolve()
        artefacts: list[ExtraArtefact] = []
        for name, value in self._gate(hook, code, project=project, workdir=Path(workdir)):
            for item in self._as_list(name, hook, value, code):
                if not isinstance(item, ExtraArtefact):
                    raise LakehouseError(
                        f"Plugin {name!r} returned {item!r} from {hook}, not an ExtraArtefact; "
                        "fix the plugin.",
                        code,
                    )
                path = Path(item.path)
                path = (path if path.is_absolute() else root / path).resolve()
                if not path.is_file() or not path.is_relative_to(root):
                    raise LakehouseError(
                        f"Plugin {name!r} contributed backup artefact {item.name!r} at {path}, "
                        f"which is not a file inside {root}; fix the plugin or disable it "
                        f"with {ENV_DISABLE}={name}.",
                        code,
                    )
                artefacts.append(dataclasses.replace(item, path=path))
        return artefacts

    def post_backup(self, *, project: Project, manifest_path: Path) -> None:
        self._observe("lakehouse_post_backup", project=project, manifest_path=Path(manifest_path))

    # ---- backup copy hooks -------------------------------------------------------------
    def backup_copies(self, *, env: Environment) -> list[BackupCopy]:
        """Every copy plugins keep of ``env``'s backups; a failing plugin's are left out."""
        copies: list[BackupCopy] = []
        for name, value in self._observe("lakehouse_backup_copies", env=env):
            for item in value or []:
                if isinstance(item, BackupCopy):
                    copies.append(dataclasses.replace(item, plugin=item.plugin or name))
                else:
                    self._warn(
                        f"plugin {name!r} returned {item!r} from lakehouse_backup_copies, "
                        "not a BackupCopy (ignored)"
                    )
        return copies

    def fetch_backup(self, *, env: Environment, backup_id: str, dest: Path) -> Path | None:
        """The directory a plugin fetched ``backup_id`` into, or None when none has a copy."""
        hook = "lakehouse_fetch_backup"
        for name, value in self._gate(
            hook, ExitCode.INTEGRITY_FAILED, env=env, backup_id=backup_id, dest=Path(dest)
        ):
            if value is None:
                continue
            path = Path(value)
            if not (path / "manifest.json").is_file():
                raise LakehouseError(
                    f"Plugin {name!r} fetched backup {backup_id} into {path}, which holds no "
                    "manifest.json; fix the plugin.",
                    ExitCode.INTEGRITY_FAILED,
                )
            return path
        return None

    def verify_copies(self, *, env: Environment, read_data_subset: str | None) -> list[Check]:
        """Every plugin's integrity checks of its copies, ``source`` set to the plugin."""
        hook = "lakehouse_verify_copies"
        code = ExitCode.INTEGRITY_FAILED
        checks: list[Check] = []
        for name, value in self._gate(hook, code, env=env, read_data_subset=read_data_subset):
            for item in self._as_list(name, hook, value, code):
                if not isinstance(item, Check):
                    raise LakehouseError(
                        f"Plugin {name!r} returned {item!r} from {hook}, not a Check; "
                        "fix the plugin.",
                        code,
                    )
                checks.append(dataclasses.replace(item, source=name))
        return checks

    def post_prune(self, *, env: Environment, result: Any) -> None:
        self._observe("lakehouse_post_prune", env=env, result=result)

    def status_checks(self, *, env: Environment) -> list[Check]:
        """Plugins' extra health lines; a failing plugin's are left out (with a warning)."""
        checks: list[Check] = []
        for name, value in self._observe("lakehouse_status_checks", env=env):
            for item in value or []:
                if isinstance(item, Check):
                    checks.append(dataclasses.replace(item, source=name))
                else:
                    self._warn(
                        f"plugin {name!r} returned {item!r} from lakehouse_status_checks, "
                        "not a Check (ignored)"
                    )
        return checks


# ---- the per-process manager ----------------------------------------------------------------
_MANAGER: LakehousePlugins | None = None


def get_plugin_manager(*, reload: bool = False) -> LakehousePlugins:
    """The process's plugin manager: built-ins and entry points, loaded once."""
    global _MANAGER
    if _MANAGER is None or reload:
        _MANAGER = LakehousePlugins()
    return _MANAGER


def set_plugin_manager(manager: LakehousePlugins | None) -> None:
    """Install ``manager`` as the process's manager (None: rebuild on next use). For tests."""
    global _MANAGER
    _MANAGER = manager


__all__ = [
    "ENTRY_POINT_GROUP",
    "FACADE_METHODS",
    "AccessURL",
    "BackupCopy",
    "ExtraArtefact",
    "LakehousePlugins",
    "PluginInfo",
    "get_plugin_manager",
    "set_plugin_manager",
]
