"""Every task and every flag is documented: docs/TASKS.md is generated from the invoke
namespace and must be current; each task is named in README.md or docs/.

Regenerate after adding a task or a flag: ``UPDATE_DOCS=1 .venv/bin/pytest tests/unit/test_docs_tasks.py``.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import pytest
from invoke import Task

from lakehouse_tasks.tasks import ns

REPO = Path(__file__).resolve().parents[2]
TASKS_DOC = REPO / "docs" / "TASKS.md"
BEGIN = "<!-- BEGIN GENERATED: tests/unit/test_docs_tasks.py -->"
END = "<!-- END GENERATED -->"


def task_names() -> list[str]:
    return sorted(ns.task_names)


def _task(name: str) -> Task:
    task = ns[name]
    assert isinstance(task, Task)
    return task


def _summary(task: Task) -> str:
    doc = inspect.getdoc(task.body) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


def flags(name: str) -> list[tuple[str, str]]:
    """``(--flag or POSITIONAL, help)`` of one task, in declaration order."""
    out = []
    for arg in _task(name).get_arguments():
        shown = arg.names[0].upper() if arg.positional else f"--{arg.names[0]}"
        if arg.kind is not bool and not arg.positional:
            shown += "=VALUE" if not arg.optional else "[=VALUE]"
        out.append((shown, " ".join((arg.help or "").split())))
    return out


def render() -> str:
    parts = [BEGIN, ""]
    for name in task_names():
        parts += [f"## `invoke {name}`", "", _summary(_task(name)) or "(no description)", ""]
        rows = flags(name)
        if rows:
            parts += ["| flag | meaning |", "|---|---|"]
            parts += [f"| `{f}` | {h.replace('|', '/')} |" for f, h in rows]
            parts.append("")
    parts.append(END)
    return "\n".join(parts) + "\n"


HEADER = """# Task reference

Every task with its one-line description and every flag, generated from the task
namespace (`lakehouse_tasks.tasks.ns`). Do not edit between the markers: run
`UPDATE_DOCS=1 .venv/bin/pytest tests/unit/test_docs_tasks.py` after changing a task.
Every task also runs as `lakehouse TASK`; `invoke --help TASK` prints the same text.

"""


def test_task_reference_is_current() -> None:
    expected = render()
    current = TASKS_DOC.read_text() if TASKS_DOC.exists() else ""
    if os.environ.get("UPDATE_DOCS") == "1":
        if BEGIN in current and END in current:
            before, _, rest = current.partition(BEGIN)
            _, _, after = rest.partition(END + "\n")
            TASKS_DOC.write_text(before + expected + after)
        else:
            TASKS_DOC.write_text(HEADER + expected)
        current = TASKS_DOC.read_text()
    assert expected in current, (
        "docs/TASKS.md is stale (a task or flag changed); regenerate it with "
        "UPDATE_DOCS=1 .venv/bin/pytest tests/unit/test_docs_tasks.py"
    )


def _docs_text() -> str:
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    return "\n".join(p.read_text() for p in files)


@pytest.mark.parametrize("name", task_names())
def test_every_task_is_named_in_the_docs(name: str) -> None:
    assert f"invoke {name}" in _docs_text(), f"`invoke {name}` appears in no README or docs page"


def _sections() -> dict[str, str]:
    text = TASKS_DOC.read_text()
    found = {}
    for m in re.finditer(r"^## `invoke ([\w.-]+)`\n(.*?)(?=^## |\Z)", text, re.M | re.S):
        found[m.group(1)] = m.group(2)
    return found


@pytest.mark.parametrize("name", task_names())
def test_every_flag_is_in_its_task_section(name: str) -> None:
    section = _sections().get(name, "")
    missing = [f for f, _ in flags(name) if f"`{f}`" not in section]
    assert not missing, f"docs/TASKS.md's section of {name} lacks {', '.join(missing)}"


def test_readme_links_the_reference() -> None:
    assert "docs/TASKS.md" in (REPO / "README.md").read_text()
