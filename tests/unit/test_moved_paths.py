"""The old import paths keep working for one release, with a DeprecationWarning, and nothing
of the package or its shipped plugins uses them any more."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from lakehouse_tasks._moved import MOVED
from lakehouse_tasks.hooks import manager, reference, types
from lakehouse_tasks.hooks.builtin import access_urls

REPO = Path(__file__).resolve().parent.parent.parent


def _fresh_import(name: str) -> object:
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_an_old_path_warns_and_serves_the_same_objects() -> None:
    with pytest.warns(DeprecationWarning, match="lakehouse_tasks.plugins is deprecated"):
        old = _fresh_import("lakehouse_tasks.plugins")
    assert old.LakehousePlugins is manager.LakehousePlugins  # type: ignore[attr-defined]
    assert old.AccessURL is types.AccessURL  # type: ignore[attr-defined]
    assert old.render_hook_reference is reference.render_hook_reference  # type: ignore[attr-defined]


def test_patching_an_old_path_reaches_the_code_that_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.warns(DeprecationWarning):
        old = _fresh_import("lakehouse_tasks.plugins")
    sentinel = object()
    monkeypatch.setattr(old, "_MANAGER", sentinel)
    assert manager._MANAGER is sentinel


def test_a_moved_package_serves_its_submodules_once() -> None:
    for name in ("lakehouse_tasks.builtin.access_urls", "lakehouse_tasks.builtin"):
        sys.modules.pop(name, None)
    with pytest.warns(DeprecationWarning):
        from lakehouse_tasks.builtin.access_urls import public_host  # type: ignore[import-not-found]
    assert public_host is access_urls.public_host
    from lakehouse_tasks.hooks import builtin

    assert builtin.access_urls is sys.modules["lakehouse_tasks.hooks.builtin.access_urls"]


def test_no_old_path_exists_as_a_file() -> None:
    for name in MOVED:
        relative = Path(*name.split("."))
        assert not (REPO / relative.with_suffix(".py")).exists(), name
        assert not (REPO / relative / "__init__.py").exists(), name


def _imported_modules(path: Path, package: str) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_the_package_never_imports_an_old_path() -> None:
    root = REPO / "lakehouse_tasks"
    offenders = []
    for path in root.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        package = ".".join(parts if path.name == "__init__.py" else parts[:-1])
        package = package.removesuffix(".__init__")
        used = _imported_modules(path, package) & set(MOVED)
        if used:
            offenders.append(f"{path.relative_to(REPO)}: {sorted(used)}")
    assert offenders == []


def test_the_shipped_plugins_import_only_the_public_plugin_module() -> None:
    offenders = []
    for path in (REPO / "plugins").glob("*/lakehouse_*/*.py"):
        for module in _imported_modules(path, "plugin"):
            if module.startswith("lakehouse_tasks") and not (
                module == "lakehouse_tasks.plugin" or module.startswith("lakehouse_tasks.plugin.")
            ):
                offenders.append(f"{path.relative_to(REPO)}: {module}")
    assert offenders == []


def test_the_old_docker_module_serves_the_engine_package() -> None:
    from lakehouse_tasks.engine import compose, containers, executor, streams, swarm

    with pytest.warns(DeprecationWarning, match="lakehouse_tasks.docker is deprecated"):
        old = _fresh_import("lakehouse_tasks.docker")
    assert old.run is executor.run  # type: ignore[attr-defined]
    assert old.ComposeProject is compose.ComposeProject  # type: ignore[attr-defined]
    assert old.running_port_bindings is containers.running_port_bindings  # type: ignore[attr-defined]
    assert old.stream_to_file is streams.stream_to_file  # type: ignore[attr-defined]
    assert old.stack_deploy is swarm.stack_deploy  # type: ignore[attr-defined]


def test_undoing_a_patch_of_an_old_path_puts_the_original_back() -> None:
    # pytest reads the current value from the module's __dict__ to restore it; a stand-in
    # that showed an empty one had the undo delete the name from its new home.
    from lakehouse_tasks.engine import executor

    with pytest.warns(DeprecationWarning):
        old = _fresh_import("lakehouse_tasks.docker")
    original = executor.run
    patch = pytest.MonkeyPatch()
    patch.setattr(old, "run", lambda *_a, **_k: "")
    assert executor.run is not original
    patch.undo()
    assert executor.run is original


def test_the_old_data_modules_serve_the_data_package() -> None:
    from lakehouse_tasks.data import backup, drill, drill_copy, maintenance, restorable, store
    from lakehouse_tasks.data import restore as data_restore

    for name in ("lakehouse_tasks.backup", "lakehouse_tasks.restore", "lakehouse_tasks.drill"):
        sys.modules.pop(name, None)
    with pytest.warns(DeprecationWarning, match="lakehouse_tasks.backup is deprecated"):
        import lakehouse_tasks.backup as old_backup  # type: ignore[import-not-found]
    assert old_backup.create_backup is backup.create_backup
    assert old_backup.recover_interrupted is maintenance.recover_interrupted
    assert old_backup.find_backup is store.find_backup
    with pytest.warns(DeprecationWarning):
        import lakehouse_tasks.restore as old_restore  # type: ignore[import-not-found]
    assert old_restore.restore_backup is data_restore.restore_backup
    assert old_restore.check_restorable is restorable.check_restorable
    with pytest.warns(DeprecationWarning):
        import lakehouse_tasks.drill as old_drill  # type: ignore[import-not-found]
    assert old_drill.run_drill is drill.run_drill
    assert old_drill.leftovers_of is drill_copy.leftovers_of
