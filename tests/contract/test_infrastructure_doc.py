"""docs/INFRASTRUCTURE.md's generated tables must match the compose stack.

Set UPDATE_DOCS=1 to rewrite them instead of failing (or run
`python -m tests.contract.gen_infrastructure_doc`).
"""

from __future__ import annotations

import difflib
import os

from .gen_infrastructure_doc import DOC, render


def test_infrastructure_doc_matches_the_stack(compose_cli):
    current = DOC.read_text()
    expected = render(current)
    if current != expected and os.environ.get("UPDATE_DOCS") == "1":
        DOC.write_text(expected)
        current = expected
    diff = "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile="docs/INFRASTRUCTURE.md",
            tofile="generated from compose",
        )
    )
    assert not diff, (
        "docs/INFRASTRUCTURE.md drifted from the compose stack; rerun with UPDATE_DOCS=1 "
        "or `python -m tests.contract.gen_infrastructure_doc`:\n" + diff
    )
