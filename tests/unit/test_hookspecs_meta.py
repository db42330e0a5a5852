"""Meta-tests: every hook is documented, reachable through the facade, recorded and tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from lakehouse_tasks.hooks import specs as hookspecs
from lakehouse_tasks.hooks.manager import FACADE_METHODS, LakehousePlugins
from lakehouse_tasks.hooks.reference import (
    BEGIN_HOOKS,
    END_HOOKS,
    hook_specs,
    render_hook_reference,
)
from lakehouse_tasks.testing import RecordingPlugin

REPO = Path(__file__).resolve().parent.parent.parent
TESTS = REPO / "tests"
PLUGINS_DOC = REPO / "docs" / "PLUGINS.md"
HOOKS = [name for name, _func in hook_specs()]


def test_hookspecs_module_defines_the_hooks() -> None:
    assert len(HOOKS) >= 10
    assert all(name.startswith("lakehouse_") for name in HOOKS)
    assert set(HOOKS) == set(FACADE_METHODS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_docstring_states_the_contract(hook: str) -> None:
    func = getattr(hookspecs, hook)
    doc = inspect.getdoc(func) or ""
    assert "Fires" in doc, f"{hook}: say when it fires"
    assert "Failure policy" in doc, f"{hook}: say what a failing plugin does"
    assert ":return:" in doc, f"{hook}: state the return contract"
    for param in inspect.signature(func).parameters:
        assert f":param {param}:" in doc, f"{hook}: document :param {param}:"
    firstresult = (getattr(func, "lakehouse_tasks_spec", None) or {}).get("firstresult")
    says_so = "stops at first non-none result" in " ".join(doc.split()).lower()
    assert says_so == bool(firstresult), f"{hook}: say 'stops at first non-None result'"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_facade_method_with_its_arguments(hook: str) -> None:
    method = getattr(LakehousePlugins, FACADE_METHODS[hook])
    spec_args = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    method_args = [p for p in inspect.signature(method).parameters if p != "self"]
    assert method_args == spec_args


@pytest.mark.parametrize("hook", HOOKS)
def test_recording_plugin_implements_the_hook(hook: str) -> None:
    implementation = getattr(RecordingPlugin, hook, None)
    assert implementation is not None, f"add {hook} to lakehouse_tasks.testing.RecordingPlugin"
    assert list(inspect.signature(implementation).parameters)[1:] == list(
        inspect.signature(getattr(hookspecs, hook)).parameters
    )


def _test_sources() -> str:
    me = Path(__file__).resolve()
    return "\n".join(
        path.read_text()
        for path in TESTS.rglob("test_*.py")
        if path.resolve() != me and "plugin_fixtures" not in path.parts
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook: str) -> None:
    method = FACADE_METHODS[hook]
    sources = _test_sources()
    assert re.search(rf"\b{hook}\b", sources) or re.search(rf"\.{method}\(", sources), (
        f"no test mentions {hook} or calls LakehousePlugins.{method}(); add one"
    )


def test_hook_reference_in_docs_is_up_to_date() -> None:
    text = PLUGINS_DOC.read_text()
    assert BEGIN_HOOKS in text and END_HOOKS in text
    block = text[text.index(BEGIN_HOOKS) + len(BEGIN_HOOKS) : text.index(END_HOOKS)]
    assert block.strip() == render_hook_reference().strip(), (
        "docs/PLUGINS.md's hook reference is out of date: run `invoke plugins --write-reference`"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook: str) -> None:
    assert f"### `{hook}(" in PLUGINS_DOC.read_text()
