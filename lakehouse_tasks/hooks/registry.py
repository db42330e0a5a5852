"""Registering plugins and calling their hooks one by one under the failure policy (the
module docstring of :mod:`lakehouse_tasks.hooks.manager` describes both); the typed facade is
:class:`~lakehouse_tasks.hooks.manager.LakehousePlugins`."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

from .. import PROJECT_NAME, __version__
from ..errors import ExitCode, LakehouseError, StateDirError
from ..parsing import parse_names
from ..paths import state_dir_failure
from . import specs
from .types import PluginInfo

if TYPE_CHECKING:
    pass


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


class PluginRegistry:
    """Registration and calling under the failure policy: where plugins come from, which are
    blocked, what failed to load, and how one hook's implementations are called one by one
    (observers report and continue, gates stop the task). :class:`~.manager.LakehousePlugins`
    adds the typed facade, one method per hook."""

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
