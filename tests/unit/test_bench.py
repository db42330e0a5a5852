"""The benchmark harness (bench/): stack generator, statistics, result document, task flags.

No timing is asserted here: the figures themselves are measured by ``invoke bench``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import stacks
from bench.run import Settings, compose_ps_ids, figure_from_pairs, figures_of
from bench.stats import (
    SCHEMA,
    Figure,
    ratios,
    result_document,
    results_table,
    summarize,
    target_met,
    validate_document,
)

MACHINE = {
    "cpu_model": "test cpu",
    "cores": 2,
    "memory_bytes": 1024,
    "engine_version": "20.10.24",
    "compose_version": "2.26.1",
    "python": "3.11.0",
}


# ---- generated stacks -------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 16, 128])
def test_generated_stack_has_n_distinct_services_on_the_standin(size: int) -> None:
    doc = stacks.generated_stack(size)
    names = list(doc["services"])
    assert len(names) == len(set(names)) == size
    assert all(s["image"] == stacks.BUSYBOX_IMAGE for s in doc["services"].values())
    assert all(s["pull_policy"] == "never" for s in doc["services"].values())
    layers = {s["labels"]["io.lakehouse.layer"] for s in doc["services"].values()}
    assert layers <= {str(n) for n in range(1, 7)}


def test_generated_stack_refuses_zero_services() -> None:
    with pytest.raises(ValueError, match="at least one"):
        stacks.generated_stack(0)


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
@pytest.mark.parametrize("size", [16, 64])
def test_compose_accepts_the_generated_stack(tmp_path: Path, size: int) -> None:
    path = stacks.write_generated_stack(tmp_path, size)
    proc = subprocess.run(
        ["docker", "compose", "-p", "lhbench-unit", "-f", str(path), "config", "--format", "json"],
        capture_output=True,
        text=True,
    )
    if "is not a docker command" in proc.stderr:
        pytest.skip("compose v2 is not installed")
    assert proc.returncode == 0, proc.stderr
    merged = json.loads(proc.stdout)
    assert len(merged["services"]) == size
    assert merged["services"]["svc-001"]["healthcheck"]["test"] == ["CMD", "/bin/true"]


def test_rehearsal_env_file_gives_a_project_name_and_a_port_per_variable(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    path = stacks.rehearsal_env_file(tmp_path, root, "lhbench-unit-1")
    values = dict(line.split("=", 1) for line in path.read_text().splitlines())
    assert values.pop("COMPOSE_PROJECT_NAME") == "lhbench-unit-1"
    assert values and all(k.endswith("_PORT") for k in values)
    assert len(set(values.values())) == len(values)


def test_project_names_are_unique_and_prefixed() -> None:
    names = {stacks.project_name("health 16") for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith(stacks.PROJECT_PREFIX + "health16-") for n in names)


# ---- statistics -------------------------------------------------------------------------------
def test_summarize_gives_median_min_max_and_keeps_samples() -> None:
    s = summarize([3.0, 1.0, 2.0, 10.0])
    assert (s["median"], s["min"], s["max"], s["runs"]) == (2.5, 1.0, 10.0, 4)
    assert s["samples"] == [3.0, 1.0, 2.0, 10.0]


def test_summarize_refuses_no_samples() -> None:
    with pytest.raises(ValueError):
        summarize([])


def test_ratios_pair_runs_in_order() -> None:
    assert ratios([2.0, 3.0], [1.0, 3.0]) == [2.0, 1.0]
    with pytest.raises(ValueError, match="unpaired"):
        ratios([1.0], [1.0, 2.0])


@pytest.mark.parametrize(
    ("kind", "target", "value", "met"),
    [
        ("max_ratio", 1.05, 1.05, True),
        ("max_ratio", 1.05, 1.06, False),
        ("min_ratio", 0.9, 0.9, True),
        ("min_ratio", 0.9, 0.89, False),
        ("max_value", 2.0, 1.0, True),
    ],
)
def test_target_met(kind: str, target: float, value: float, met: bool) -> None:
    assert target_met(kind, target, value) is met


def test_throughput_figure_is_raw_time_over_tool_time() -> None:
    fig = figure_from_pairs(
        "b", "backup", "tar", 0.9, [2.0, 4.0], [1.0, 4.0], throughput_bytes=10**8
    )
    assert fig.target_kind == "min_ratio"
    assert fig.value["samples"] == [0.5, 1.0]
    assert fig.tool is not None and fig.tool["max"] == pytest.approx(50.0)  # MB/s
    assert not fig.met  # median 0.75 < 0.9


def test_time_figure_is_tool_time_over_raw_time() -> None:
    fig = figure_from_pairs("h", "health", "ps", 1.5, [1.0, 1.2, 1.4], [1.0, 1.0, 1.0])
    assert fig.value["median"] == pytest.approx(1.2)
    assert fig.met


def test_compose_ps_ids_reads_both_json_layouts() -> None:
    lines = '{"ID": "a1", "Name": "x"}\n{"ID": "b2", "Name": "y"}\n'
    array = json.dumps([{"ID": "a1"}, {"ID": "b2"}])
    assert compose_ps_ids(lines) == compose_ps_ids(array) == ["a1", "b2"]
    assert compose_ps_ids("") == []


def test_quick_settings_shrink_sizes_and_runs() -> None:
    quick, full = Settings.make(quick=True), Settings.make(quick=False)
    assert quick.data_bytes == 100 * 1024**2 and full.data_bytes == 1024**3
    assert quick.refreshes < full.refreshes == 1000
    assert quick.runs < full.runs
    assert Settings.make(quick=False, runs=4).runs == 4


# ---- result document --------------------------------------------------------------------------
def _figures() -> list[Figure]:
    return [
        figure_from_pairs(
            "startup-invoke", "start-up", "invoke --list", 1.3, [0.2, 0.3], [0.2, 0.2]
        ),
        Figure(
            id="watch-memory",
            title="memory",
            compared_with="its start",
            target_kind="max_value",
            target=2.0,
            unit="MB",
            value=summarize([0.4]),
        ),
    ]


def test_result_document_conforms_and_round_trips_through_json(tmp_path: Path) -> None:
    doc = result_document(_figures(), machine=MACHINE, quick=True, runs=2)
    assert doc["schema"] == SCHEMA
    assert validate_document(doc) == []
    again = json.loads(json.dumps(doc))
    assert validate_document(again) == []
    assert [f.id for f in figures_of(again)] == ["startup-invoke", "watch-memory"]
    assert again["all_met"] is True
    assert again["figures"][0]["met"] is True and again["figures"][1]["met"] is True


def test_validate_document_names_what_is_missing() -> None:
    doc = result_document(_figures(), machine={"cores": 2}, quick=False, runs=3)
    del doc["figures"][0]["value"]["median"]
    problems = validate_document(doc)
    assert "machine.cpu_model: missing" in problems
    assert "figures[0].value.median: missing" in problems


def test_results_table_has_one_row_per_figure_and_marks_misses() -> None:
    figs = _figures()
    figs.append(figure_from_pairs("deploy", "deploy", "up --wait", 1.05, [2.0], [1.0]))
    table = results_table(figs).splitlines()
    assert len(table) == 2 + len(figs)
    assert table[-1].endswith("| **no** |")
    assert "0.40 MB" in table[3]


def test_committed_results_conform() -> None:
    latest = Path(__file__).resolve().parents[2] / "bench" / "results" / "latest.json"
    if not latest.exists():
        pytest.skip("no committed results yet")
    assert validate_document(json.loads(latest.read_text())) == []


def test_a_shell_pipe_in_a_cell_does_not_split_the_table_row() -> None:
    fig = figure_from_pairs("backup", "backup", "`tar -cf - | gzip -1`", 0.9, [1.0], [1.0])
    row = results_table([fig]).splitlines()[-1]
    assert "`tar -cf - \\| gzip -1`" in row
    assert row.replace("\\|", "").count("|") == 8  # seven cells
