"""Old import paths of modules that moved, kept working for one release (CHANGELOG.md).

``import lakehouse_tasks.plugins`` (or any path listed in :data:`MOVED`) still works: a finder
hands out a stand-in module that warns once (``DeprecationWarning``) and forwards every
attribute read and write to the modules now holding the names, so ``monkeypatch.setattr`` on an
old path still reaches the code that runs. The package itself never imports these paths.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

#: old module -> (new modules, first the one that owns the old module's state; advice).
MOVED: dict[str, tuple[tuple[str, ...], str]] = {
    "lakehouse_tasks.plugins": (
        (
            "lakehouse_tasks.hooks.manager",
            "lakehouse_tasks.hooks.types",
            "lakehouse_tasks.hooks.reference",
        ),
        "plugins import lakehouse_tasks.plugin; the manager is lakehouse_tasks.hooks.manager",
    ),
    "lakehouse_tasks.hookspecs": (
        ("lakehouse_tasks.hooks.specs",),
        "use lakehouse_tasks.hooks.specs",
    ),
    "lakehouse_tasks.builtin": (
        ("lakehouse_tasks.hooks.builtin",),
        "use lakehouse_tasks.hooks.builtin",
    ),
    "lakehouse_tasks.builtin.access_urls": (
        ("lakehouse_tasks.hooks.builtin.access_urls",),
        "plugins import public_host from lakehouse_tasks.plugin",
    ),
    "lakehouse_tasks.upgrade": (
        ("lakehouse_tasks.backends.compose.upgrade",),
        "use lakehouse_tasks.backends.compose.upgrade (compose's config-hash comparison)",
    ),
    "lakehouse_tasks.docker": (
        (
            "lakehouse_tasks.engine.executor",
            "lakehouse_tasks.engine.client",
            "lakehouse_tasks.engine.compose",
            "lakehouse_tasks.engine.containers",
            "lakehouse_tasks.engine.stats",
            "lakehouse_tasks.engine.streams",
            "lakehouse_tasks.engine.volumes",
            "lakehouse_tasks.engine.images",
            "lakehouse_tasks.engine.swarm",
        ),
        "plugins import running_port_bindings from lakehouse_tasks.plugin; the engine calls "
        "are in lakehouse_tasks.engine (executor, client, compose, containers, stats, streams, "
        "volumes, images, swarm)",
    ),
    "lakehouse_tasks.backup": (
        (
            "lakehouse_tasks.data.backup",
            "lakehouse_tasks.data.maintenance",
            "lakehouse_tasks.data.plan",
            "lakehouse_tasks.data.store",
            "lakehouse_tasks.data.manifest",
            "lakehouse_tasks.backup_view",
        ),
        "use lakehouse_tasks.data (backup, maintenance, plan, store, manifest; the tables: lakehouse_tasks.backup_view); plugins "
        "import default_dest and check_free_space from lakehouse_tasks.plugin",
    ),
    "lakehouse_tasks.restore": (
        (
            "lakehouse_tasks.data.restore",
            "lakehouse_tasks.data.restorable",
            "lakehouse_tasks.backup_view",
        ),
        "use lakehouse_tasks.data.restore (check_restorable: lakehouse_tasks.data.restorable)",
    ),
    "lakehouse_tasks.verify": (("lakehouse_tasks.data.verify",), "use lakehouse_tasks.data.verify"),
    "lakehouse_tasks.drill": (
        (
            "lakehouse_tasks.data.drill",
            "lakehouse_tasks.data.drill_copy",
            "lakehouse_tasks.data.drill_checks",
        ),
        "use lakehouse_tasks.data.drill (the copy: data.drill_copy, the comparisons: data.drill_checks)",
    ),
    "lakehouse_tasks.engine_api": (
        ("lakehouse_tasks.engine.api",),
        "use lakehouse_tasks.engine.api",
    ),
    "lakehouse_tasks.swarm": (
        (
            "lakehouse_tasks.backends.swarm.steps",
            "lakehouse_tasks.backends.swarm.translate",
            "lakehouse_tasks.backends.swarm.policies",
            "lakehouse_tasks.backends.swarm.secrets",
            "lakehouse_tasks.backends.swarm.views",
            "lakehouse_tasks.backends.swarm.cluster",
        ),
        "use lakehouse_tasks.backends.swarm (SwarmBackend; the steps are in its modules)",
    ),
    "lakehouse_tasks.builtin.event_log": (
        ("lakehouse_tasks.hooks.builtin.event_log",),
        "use lakehouse_tasks.hooks.builtin.event_log",
    ),
    "lakehouse_tasks.data.tables": (
        ("lakehouse_tasks.backup_view",),
        "use lakehouse_tasks.backup_view (the data package renders nothing)",
    ),
}


#: The real ``__dict__`` of a module object (the stand-in's own attributes).
_MODULE_DICT: Any = vars(types.ModuleType)["__dict__"]


class MovedModule(types.ModuleType):
    """Stands in for a moved module: reads and writes go to the modules holding the names."""

    def __init__(self, name: str, homes: Sequence[types.ModuleType]) -> None:
        super().__init__(name)
        object.__setattr__(self, "_homes", tuple(homes))

    def _home_of(self, attr: str) -> types.ModuleType | None:
        for home in self._homes:
            if attr in vars(home):
                return home
        return None

    def __getattr__(self, attr: str) -> Any:
        home = self._home_of(attr)
        if home is None:
            return getattr(self._homes[0], attr)  # the home's own __getattr__, or AttributeError
        return getattr(home, attr)

    def __setattr__(self, attr: str, value: Any) -> None:
        if (attr.startswith("__") and attr.endswith("__")) or isinstance(value, MovedModule):
            # What the import system sets: the module's own attributes, and an old submodule
            # path on its old package (the new package keeps its real submodule).
            object.__setattr__(self, attr, value)
            return
        setattr(self._home_of(attr) or self._homes[0], attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(self._home_of(attr) or self._homes[0], attr)

    @property  # type: ignore[misc]
    def __dict__(self) -> types.MappingProxyType[str, Any]:  # type: ignore[override]
        """The names the homes hold (and the stand-in's own): what ``vars()`` and pytest's
        ``monkeypatch.setattr`` read as the current value, so that undoing a patch puts the
        original back instead of deleting the name from its home."""
        merged: dict[str, Any] = {}
        for home in reversed(self._homes):
            merged.update(vars(home))
        merged.update(_MODULE_DICT.__get__(self))
        return types.MappingProxyType(merged)

    def __dir__(self) -> list[str]:
        return sorted({name for home in self._homes for name in dir(home)})


class _MovedFinder:
    """Finds the old paths in :data:`MOVED`. It goes first in ``sys.meta_path``: a moved
    package's submodules would otherwise be found again, as second copies, through the new
    package's ``__path__``. A test checks that no old path exists as a file."""

    @classmethod
    def find_spec(
        cls, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, cls)  # type: ignore[arg-type]

    @staticmethod
    def create_module(spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        new, advice = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} is deprecated and goes away in the next release; {advice}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return MovedModule(spec.name, [importlib.import_module(name) for name in new])

    @staticmethod
    def exec_module(module: types.ModuleType) -> None:
        """Nothing to run: the stand-in only forwards."""


def install() -> None:
    if _MovedFinder not in sys.meta_path:
        sys.meta_path.insert(0, _MovedFinder)  # type: ignore[arg-type]
