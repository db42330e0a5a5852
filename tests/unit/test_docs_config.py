"""docs/CONFIGURATION.md is generated: this test fails with a diff when it drifts.

Run ``UPDATE_DOCS=1 .venv/bin/pytest tests/unit/test_docs_config.py`` to rewrite the generated
part (between the markers) from env/variables.yaml, the tracked env files and the merged
compose configuration of every environment.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import pytest

from lakehouse_tasks.environment import read_env_file
from lakehouse_tasks.project import open_project
from lakehouse_tasks.schema import Schema, load_schema

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "CONFIGURATION.md"
BEGIN = "<!-- BEGIN GENERATED: variables -->"
END = "<!-- END GENERATED: variables -->"
ENVIRONMENTS = ("dev", "staging", "prod")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def compose_users() -> tuple[dict[str, set[str]], set[str]]:
    """Variable -> services whose merged config references it (``${VAR...}``), over every
    environment (``compose config --no-interpolate``), and every service seen."""
    users: dict[str, set[str]] = {}
    services: set[str] = set()
    for name in ENVIRONMENTS:
        project = open_project(name, strict=False)
        raw = project.compose.compose("config", "--no-interpolate", "--format", "json")
        for service, spec in (json.loads(raw).get("services") or {}).items():
            services.add(service)
            for var in _REFERENCE.findall(json.dumps(spec)):
                users.setdefault(var, set()).add(service)
    return users, services


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "\\<").replace("\n", " ")


def render_variables(schema: Schema) -> str:
    values = {name: read_env_file(REPO / "env" / f"{name}.env") for name in ENVIRONMENTS}
    users, services = compose_users()
    names = list(schema.variables) + sorted(
        {k for v in values.values() for k in v} - set(schema.variables)
    )
    lines = [
        "| variable | type | meaning | dev | staging | prod | used by |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        var = schema.get(name)
        kind = var.type if var else "undeclared"
        if var and var.choices:
            kind += " (" + ", ".join(var.choices) + ")"
        if var and var.required:
            kind += ", required"
        cells = []
        for env_name in ENVIRONMENTS:
            value = values[env_name].get(name)
            if value is None:
                cells.append("-")
            elif schema.is_secret(name):
                cells.append("secret")
            else:
                cells.append(f"`{_cell(value)}`" if value else '`""`')
        declared = set(var.used_by) if var else set()
        used = users.get(name, set()) | {u for u in declared if u not in services}
        lines.append(
            f"| `{name}` | {_cell(kind)} | {_cell(var.description if var else '')} | "
            + " | ".join(cells)
            + f" | {', '.join(sorted(used)) or '-'} |"
        )
    return "\n".join(lines)


def expected_document(current: str) -> str:
    table = render_variables(load_schema(REPO / "env" / "variables.yaml"))
    generated = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in current and END in current:
        head, _rest = current.split(BEGIN, 1)
        _old, tail = _rest.split(END, 1)
        return head + generated + tail
    return current.rstrip("\n") + "\n\n" + generated + "\n"


def test_configuration_doc_is_up_to_date() -> None:
    current = DOC.read_text() if DOC.exists() else ""
    expected = expected_document(current)
    if os.environ.get("UPDATE_DOCS") == "1":
        DOC.write_text(expected)
        return
    if current != expected:
        diff = "".join(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "docs/CONFIGURATION.md",
                "generated",
                n=1,
            )
        )
        pytest.fail(
            "docs/CONFIGURATION.md is out of date; run "
            "`UPDATE_DOCS=1 .venv/bin/pytest tests/unit/test_docs_config.py`:\n" + diff
        )


def test_every_variable_of_every_env_file_is_documented() -> None:
    text = DOC.read_text()
    for name in ENVIRONMENTS:
        for key in read_env_file(REPO / "env" / f"{name}.env"):
            assert f"| `{key}` |" in text, key
