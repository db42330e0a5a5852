"""The hook reference of docs/PLUGINS.md, generated from the specs' signatures and docstrings.

``invoke plugins --write-reference`` rewrites the block between the markers; a test fails when
the committed reference is out of date.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import PROJECT_NAME
from ..errors import LakehouseError
from . import specs
from .manager import FACADE_METHODS

BEGIN_HOOKS = "<!-- BEGIN HOOKS -->"
END_HOOKS = "<!-- END HOOKS -->"


def hook_specs() -> list[tuple[str, Callable[..., Any]]]:
    """Every hook spec in :mod:`lakehouse_tasks.hooks.specs`, in file order."""
    found = [
        (name, func)
        for name, func in vars(specs).items()
        if name.startswith("lakehouse_") and inspect.isfunction(func)
    ]
    return sorted(found, key=lambda item: item[1].__code__.co_firstlineno)


def _rst_to_markdown(text: str) -> str:
    """The few reST constructs the spec docstrings use, as Markdown."""
    text = re.sub(
        r":(?:class|func|meth|mod):`~?([\w.]+)`", lambda m: f"`{m[1].split('.')[-1]}`", text
    )
    text = text.replace("``", "`")
    text = re.sub(r"^:param (\w+):", r"- **\1**:", text, flags=re.MULTILINE)
    return re.sub(r"^:return:", "- **returns**:", text, flags=re.MULTILINE)


def render_hook_reference() -> str:
    """The Markdown hook reference, generated from the specs' signatures and docstrings."""
    parts = []
    for name, func in hook_specs():
        opts = getattr(func, f"{PROJECT_NAME}_spec", {}) or {}
        signature = inspect.signature(func)
        args = ", ".join(signature.parameters)
        returns = signature.return_annotation
        if returns is inspect.Signature.empty:
            returns = "None"
        facade = FACADE_METHODS.get(name, "-")
        suffix = " (firstresult)" if opts.get("firstresult") else ""
        doc = _rst_to_markdown(inspect.cleandoc(func.__doc__ or ""))
        parts.append(
            f"### `{name}({args}) -> {returns}`{suffix}\n\n"
            f"Facade: `LakehousePlugins.{facade}()`\n\n{doc}\n"
        )
    return "\n".join(parts)


def write_hook_reference(doc: Path) -> bool:
    """Regenerate the block between the markers in ``doc``; return True when it changed."""
    text = doc.read_text()
    start, end = text.find(BEGIN_HOOKS), text.find(END_HOOKS)
    if start < 0 or end < start:
        raise LakehouseError(
            f"{doc} has no {BEGIN_HOOKS} ... {END_HOOKS} block; add the markers where the "
            "hook reference belongs."
        )
    new = text[: start + len(BEGIN_HOOKS)] + "\n\n" + render_hook_reference() + "\n" + text[end:]
    if new == text:
        return False
    doc.write_text(new)
    return True


__all__ = ["hook_specs", "render_hook_reference", "write_hook_reference"]
