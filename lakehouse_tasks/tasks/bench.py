"""``bench``: the benchmark suite of docs/PERFORMANCE.md (the tool against raw docker).

The suite itself lives in ``bench/`` at the project root (it ships with the checkout, not the
package); it is imported only when the task runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from invoke import Exit

from ._base import lakehouse_task


@lakehouse_task(
    iterable=["only"],
    help={
        "only": "only this figure group: startup, health, memory, serve, deploy, backup, "
        "volume, offsite (backup includes restore; volume: the volume's backup and restore "
        "alone; repeatable)",
        "runs": "runs per figure (default 7, or 3 with --quick; deploy, backup and restore "
        "run at most 5, or 2 with --quick)",
        "quick": "100 MiB instead of 1 GiB of data, 200 instead of 1000 watch refreshes, "
        "fewer runs",
        "json_": "print the result document instead of the table",
        "output": "where to write the JSON results (default bench/results/latest.json)",
    },
)
def bench(
    c: Any,
    only: list[str] | None = None,
    runs: int | None = None,
    quick: bool = False,
    json_: bool = False,
    output: str | None = None,
) -> None:
    """Measure the tool against the raw docker/compose commands; exit 1 when a target is missed."""
    from ..errors import ConfigError
    from ..paths import project_root

    root = project_root()
    if not (root / "bench" / "run.py").is_file():
        raise ConfigError(
            f"{root} has no bench/ suite; run the task from a lakehouse-ops checkout."
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from bench.run import GROUPS, figures_of, run_suite, write_results
    from bench.stats import results_table

    from ..parsing import parse_names

    selected = list(parse_names(only))
    unknown = [g for g in selected if g not in GROUPS]
    if unknown:
        raise ConfigError(f"Unknown figure {', '.join(unknown)}; choose from {', '.join(GROUPS)}.")
    if runs is not None and int(runs) < 1:
        raise ConfigError(f"--runs must be at least 1, not {runs}.")
    doc = run_suite(root=root, only=selected, runs=int(runs) if runs else None, quick=quick)
    target = Path(output) if output else root / "bench" / "results" / "latest.json"
    write_results(doc, target)
    print(f"results written to {target}", file=sys.stderr)
    if json_:
        print(json.dumps(doc, indent=2))
    else:
        print(results_table(figures_of(doc)))
    if not doc["all_met"]:
        raise Exit(code=1)
