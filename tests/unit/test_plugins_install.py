"""A real plugin distribution, pip-installed, is discovered through its entry point.

The sample distributions live in tests/plugin_fixtures/. Each test copies one into tmp_path
under a unique name (concurrent runs must not uninstall each other's copy) and installs it
with pip, offline, then removes it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.events import Event, EventKind
from lakehouse_tasks.hooks.manager import ENTRY_POINT_GROUP, LakehousePlugins

FIXTURES = Path(__file__).resolve().parent.parent / "plugin_fixtures"

pytestmark = pytest.mark.slow


def prepare(fixture: str, tmp_path: Path) -> tuple[Path, str, str]:
    """Copy a fixture distribution with a unique name; return (dir, dist name, module)."""
    suffix = uuid.uuid4().hex[:8]
    source = FIXTURES / fixture
    module = f"lakehouse_{fixture}"
    unique_module = f"{module}_{suffix}"
    target = tmp_path / fixture
    target.mkdir()
    shutil.copy(FIXTURES / "fixture_backend.py", target)
    for path in source.iterdir():
        if path.suffix not in {".py", ".toml"}:
            continue
        text = path.read_text().replace(module, unique_module)
        text = text.replace(module.replace("_", "-"), unique_module.replace("_", "-"))
        name = path.name.replace(module, unique_module)
        (target / name).write_text(text)
    return target, unique_module.replace("_", "-"), unique_module


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def installed_sample_plugin(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The sample plugin installed into the running environment: (entry-point name, dist)."""
    source, dist, module = prepare("sample_plugin", tmp_path)
    proc = pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(source))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    importlib.invalidate_caches()
    try:
        yield module, dist
    finally:
        pip("uninstall", "--yes", dist)
        sys.modules.pop(module, None)
        importlib.invalidate_caches()


def test_installed_plugin_is_discovered_and_its_hooks_are_called(
    installed_sample_plugin: tuple[str, str],
) -> None:
    name, dist = installed_sample_plugin
    # Only this entry point: other plugins installed in the environment are not under test.
    plugins = LakehousePlugins(entry_points=False, disabled=(), strict=True, trace=False)
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    assert plugins.load_entry_points([ep for ep in found if ep.name == name]) == [name]
    info = {i.name: i for i in plugins.describe()}[name]
    assert (info.source, info.version, info.detail) == ("entry point", "1.2.3", dist)
    assert info.hooks == (
        "lakehouse_access_urls",
        "lakehouse_event",
        "lakehouse_preflight_checks",
    )

    plugins.emit(Event(EventKind.BACKUP_SUCCEEDED, "staging", "backup done"))
    module: Any = plugins.plugin(name)
    assert [e.message for e in module.RECEIVED_EVENTS] == ["backup done"]
    checks = plugins.preflight_checks(project=object())
    assert [(c.name, c.source) for c in checks] == [("sample plugin is happy", name)]


def test_invoke_plugins_json_lists_the_installed_plugin(
    installed_sample_plugin: tuple[str, str],
) -> None:
    name, _dist = installed_sample_plugin
    script = Path(sys.executable).with_name("lakehouse")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    proc = subprocess.run(
        [str(script), "plugins", "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows[name]["source"] == "entry point"
    assert rows[name]["version"] == "1.2.3"
    assert "lakehouse_event" in rows[name]["hooks"]
    assert rows["lakehouse.event_log"]["source"] == "built-in"


def test_installed_plugin_that_fails_to_import_is_named_and_skipped(tmp_path: Path) -> None:
    # Installed into a private target directory rather than the shared environment, so other
    # test runs in this environment never see a broken plugin.
    source, _dist, module = prepare("broken_plugin", tmp_path)
    site = tmp_path / "site"
    proc = pip(
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--target",
        str(site),
        str(source),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    script = Path(sys.executable).with_name("lakehouse")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["PYTHONPATH"] = str(site)
    listed = subprocess.run(
        [str(script), "plugins", "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert listed.returncode == 0
    assert f"plugin {module!r} cannot be imported (ModuleNotFoundError" in listed.stderr
    assert "Traceback" not in listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows[module]["status"] == "failed"
    assert rows["lakehouse.access_urls"]["status"] == "active"

    strict = subprocess.run(
        [str(script), "plugins"],
        capture_output=True,
        text=True,
        env={**env, "LAKEHOUSE_STRICT_PLUGINS": "1"},
        timeout=60,
    )
    assert strict.returncode == 2
    assert f"Plugin {module!r} cannot be imported" in strict.stderr
    assert "Traceback" not in strict.stderr
