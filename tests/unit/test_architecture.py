"""The package's shape: no import circles (the layers themselves are import-linter contracts,
`lint-imports` in scripts/test, written in pyproject.toml)."""

from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), over runtime imports."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles_among_the_package_modules() -> None:
    # Imports inside functions count (grimp reads them too); annotations-only ones do not.
    graph = grimp.build_graph("lakehouse_tasks", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_no_module_guards_a_sibling_import_with_except_import_error() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "lakehouse_tasks"
    guarded = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Try):
                continue
            relative = any(
                isinstance(n, ast.ImportFrom) and n.level > 0
                for b in node.body
                for n in ast.walk(b)
            )
            catches = any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers
            )
            if relative and catches:
                guarded.append(f"{path.relative_to(root)}:{node.lineno}")
    assert guarded == []


#: The size limit of a module of the package, and the modules allowed over it, each with its
#: reason (docs/ARCHITECTURE.md, "Modules over 400 lines"). A module leaves this list when it
#: is split: the second test fails while a listed module is back under the limit.
MAX_MODULE_LINES = 400
OVER_400_LINES: dict[str, str] = {}


def _module_lines() -> dict[str, int]:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "lakehouse_tasks"
    return {
        str(path.relative_to(root)): len(path.read_text().splitlines())
        for path in sorted(root.rglob("*.py"))
    }


def test_no_module_is_over_400_lines_unless_named_with_a_reason() -> None:
    too_long = {
        name: lines
        for name, lines in _module_lines().items()
        if lines > MAX_MODULE_LINES and name not in OVER_400_LINES
    }
    assert too_long == {}, (
        f"modules over {MAX_MODULE_LINES} lines: {too_long}; split them into cohesive modules "
        "or name them in OVER_400_LINES with the reason (and in docs/ARCHITECTURE.md)"
    )


def test_every_named_long_module_exists_and_is_still_long() -> None:
    lines = _module_lines()
    stale = {
        name: lines.get(name) for name in OVER_400_LINES if lines.get(name, 0) <= MAX_MODULE_LINES
    }
    assert stale == {}, f"no longer over {MAX_MODULE_LINES} lines (or gone): remove {stale}"
    assert all(reason.strip() for reason in OVER_400_LINES.values())


def test_the_unit_tests_patch_module_globals_only_where_architecture_md_says_why() -> None:
    """Unit tests use a fake backend; every ``monkeypatch.setattr`` left is in the table of
    docs/ARCHITECTURE.md ("Unit tests: a fake backend, and the patches kept"), per file."""
    import re
    from collections import Counter
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    call = re.compile(r"^\s*monkeypatch\.setattr\(", re.M)
    found = Counter(
        {
            path.name: len(call.findall(path.read_text()))
            for path in sorted((root / "tests" / "unit").glob("test_*.py"))
            if call.search(path.read_text())
        }
    )
    doc = (root / "docs" / "ARCHITECTURE.md").read_text()
    listed = Counter(
        {m[1]: int(m[2]) for m in re.finditer(r"^\| `(test_\w+\.py)` \| (\d+) \|", doc, re.M)}
    )
    assert found == listed, "update the table of kept patches in docs/ARCHITECTURE.md"
    assert f"({sum(found.values())} calls in `tests/unit`)" in doc
