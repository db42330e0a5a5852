"""CLI start-up stays cheap: the task namespace loads no domain dependency at import time.

`invoke --list` and `lakehouse --help` import ``lakehouse_tasks.tasks``; every task module
imports its domain modules inside the task bodies (docs/PERFORMANCE.md, CLI start-up). These
tests fail when a module-level import brings python_on_whales, rich, yaml or pluggy back.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("python_on_whales", "rich", "yaml", "pluggy", "pydantic", "dotenv")

_PROBE = """
import json, sys
import invoke  # invoke itself loads its vendored yaml; only what comes on top counts
before = set(sys.modules)
import lakehouse_tasks.tasks
added = sorted(set(sys.modules) - before)
print(json.dumps(added))
"""


def _modules_added_by_the_namespace() -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    return list(json.loads(proc.stdout))


def test_importing_the_task_namespace_loads_no_heavy_dependency() -> None:
    added = _modules_added_by_the_namespace()
    heavy = [m for m in added if m.split(".")[0] in HEAVY]
    assert heavy == [], f"importing lakehouse_tasks.tasks now imports {heavy}"


def test_importing_the_task_namespace_loads_no_domain_module() -> None:
    added = _modules_added_by_the_namespace()
    domain = [
        m
        for m in added
        if m.startswith("lakehouse_tasks.")
        and not m.startswith("lakehouse_tasks.tasks")
        and m != "lakehouse_tasks.errors"  # the error boundary of every task (an enum)
        and m != "lakehouse_tasks._moved"  # the old import paths' finder: stdlib only
    ]
    assert domain == [], f"importing lakehouse_tasks.tasks now imports {domain}"


def test_hookimpl_is_still_importable_from_the_package() -> None:
    import pluggy

    from lakehouse_tasks import PROJECT_NAME, hookimpl

    assert isinstance(hookimpl, pluggy.HookimplMarker)
    assert hookimpl.project_name == PROJECT_NAME


def test_the_schedule_default_time_matches_the_schedule_module() -> None:
    from lakehouse_tasks import schedule
    from lakehouse_tasks.tasks import backup

    assert backup.DEFAULT_AT == schedule.DEFAULT_AT


def test_the_moved_paths_finder_adds_no_module_beyond_the_standard_library() -> None:
    probe = (
        "import sys; before = set(sys.modules); import lakehouse_tasks; "
        "import json; print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    added = json.loads(proc.stdout)
    ours = sorted(m for m in added if m.startswith("lakehouse_tasks"))
    foreign = [m for m in added if m.split(".")[0].lstrip("_") not in sys.stdlib_module_names]
    assert ours == ["lakehouse_tasks", "lakehouse_tasks._moved"]
    assert [m for m in foreign if not m.startswith("lakehouse_tasks")] == []
