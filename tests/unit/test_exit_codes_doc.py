"""docs/EXIT_CODES.md matches every exit path: each ``ExitCode``, each error type of the code
(every ``LakehouseError`` subclass, the shipped plugins' included) and each literal exit of the
tasks and the command line is a documented row of the table."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import lakehouse_tasks
from lakehouse_tasks.errors import ExitCode, LakehouseError

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "EXIT_CODES.md"
SOURCES = [
    *sorted((REPO / "lakehouse_tasks").rglob("*.py")),
    *sorted((REPO / "plugins").rglob("*.py")),
]


def documented() -> dict[int, tuple[str, str]]:
    """code -> (name, meaning) of the table's rows."""
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"^\| (\d+) \| ([^|]+) \| ([^|]+) \|", line)
        if match:
            rows[int(match[1])] = (match[2].strip(), match[3].strip())
    return rows


def test_the_table_lists_exactly_the_exit_codes() -> None:
    rows = documented()
    assert set(rows) == {int(code) for code in ExitCode}
    for code in ExitCode:
        name, meaning = rows[int(code)]
        assert name.split()[0] == code.name.lower().split("_")[0], (code, name)
        assert meaning


def _import_everything() -> None:
    for module in pkgutil.walk_packages(lakehouse_tasks.__path__, "lakehouse_tasks."):
        if module.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError as exc:  # an optional extra (the status page's server)
            if (exc.name or "").startswith("lakehouse"):
                raise
    for name in ("lakehouse_monitoring.plugin", "lakehouse_alerts.plugin"):
        try:
            importlib.import_module(name)
        except ImportError:  # the plugins are installed by scripts/setup
            pytest.skip(f"{name} is not installed")


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


class _Placeholder(str):
    """Text that also answers any attribute (an error built from a result object)."""

    def __getattr__(self, name: str) -> _Placeholder:
        return self


def _instance(cls: type[LakehouseError]) -> LakehouseError:
    """An instance made with a placeholder for each required argument."""
    params = [
        p
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self"
        and p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return cls(*[_Placeholder("x")] * len(params))


def test_every_error_type_exits_with_a_documented_code() -> None:
    _import_everything()
    rows = documented()
    types = _subclasses(LakehouseError) | {LakehouseError}
    assert len(types) >= 5
    for cls in sorted(types, key=lambda t: t.__qualname__):
        error = _instance(cls)
        assert error.exit_code in rows, f"{cls.__qualname__} exits {error.exit_code}"


def test_every_exit_in_the_code_is_documented() -> None:
    rows = documented()
    names = {code.name for code in ExitCode}
    literal = re.compile(r"(?:Exit\(|sys\.exit\()[^)]*?(?:code=)?(\d+)\)")
    seen: set[int] = set()
    for path in SOURCES:
        text = path.read_text()
        for name in re.findall(r"ExitCode\.([A-Z_]+)", text):
            assert name in names, f"{path}: ExitCode.{name}"
            seen.add(int(ExitCode[name]))
        for number in literal.findall(text):
            assert int(number) in rows, f"{path}: exit {number} is not in docs/EXIT_CODES.md"
            seen.add(int(number))
    # Every documented code is used somewhere: the table lists no dead code.
    assert set(rows) <= seen | {int(ExitCode.OK)}, set(rows) - seen


def test_the_message_families_carry_documented_codes() -> None:
    rows = documented()
    families = re.findall(r"^- `.*` \((\d+)\)", DOC.read_text(), re.MULTILINE)
    assert families
    assert {int(code) for code in families} <= set(rows)
