"""Statistics, machine facts and the result document of the benchmark suite.

Plain functions without Docker so the unit tests can cover them (tests/unit/test_bench.py).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Version of the JSON layout written to bench/results/*.json.
SCHEMA = "lakehouse-bench/1"

#: How a figure's target reads: ``max_ratio`` (tool/raw time at most), ``min_ratio`` (tool
#: throughput over raw throughput at least), ``max_value`` (an absolute ceiling, ``unit``).
TARGET_KINDS = ("max_ratio", "min_ratio", "max_value")


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of ``samples`` (and the samples), the shape every figure uses."""
    values = [float(v) for v in samples]
    if not values:
        raise ValueError("no samples to summarize")
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "samples": values,
    }


def ratios(tool: Sequence[float], raw: Sequence[float]) -> list[float]:
    """Per-run ``tool / raw`` of interleaved pairs (run i of each side ran back to back)."""
    if len(tool) != len(raw):
        raise ValueError(f"unpaired samples: {len(tool)} tool runs, {len(raw)} raw runs")
    return [t / r for t, r in zip(tool, raw, strict=True) if r > 0]


def target_met(kind: str, target: float, value: float) -> bool:
    """Whether a measured median ``value`` meets a target of ``kind``."""
    if kind == "max_ratio" or kind == "max_value":
        return value <= target
    if kind == "min_ratio":
        return value >= target
    raise ValueError(f"unknown target kind {kind!r}; one of {', '.join(TARGET_KINDS)}")


@dataclass
class Figure:
    """One row of the results table.

    ``value`` is what the target is judged on (a summary of ratios, or of an absolute value
    in ``unit``); ``tool`` and ``raw`` are the underlying summaries (seconds unless ``unit``
    says otherwise).
    """

    id: str
    title: str
    compared_with: str
    target_kind: str
    target: float
    value: dict[str, Any]
    unit: str = "x"
    tool: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return target_met(self.target_kind, self.target, float(self.value["median"]))

    @property
    def target_text(self) -> str:
        sign = {"max_ratio": "<=", "max_value": "<", "min_ratio": ">="}[self.target_kind]
        return f"{sign} {self.target:g}{self.unit}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "compared_with": self.compared_with,
            "target": {"kind": self.target_kind, "value": self.target, "unit": self.unit},
            "value": self.value,
            "met": self.met,
            "tool": self.tool,
            "raw": self.raw,
            "notes": list(self.notes),
            "extra": dict(self.extra),
        }


def _first_line(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, engine and compose versions, Python: where figures ran."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        cpu = platform.processor()
    memory = 0
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {
        "cpu_model": cpu or platform.machine(),
        "cores": os.cpu_count() or 0,
        "memory_bytes": memory,
        "os": f"{platform.system()} {platform.release()}",
        "engine_version": _first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
        "compose_version": _first_line(["docker", "compose", "version", "--short"]),
        "python": platform.python_version(),
    }


def result_document(
    figures: Sequence[Figure],
    *,
    machine: Mapping[str, Any],
    quick: bool,
    runs: int,
    started: _dt.datetime | None = None,
    duration_s: float = 0.0,
) -> dict[str, Any]:
    """The JSON written to bench/results/latest.json (layout: :data:`SCHEMA`)."""
    return {
        "schema": SCHEMA,
        "created": (started or _dt.datetime.now(_dt.UTC)).isoformat(),
        "duration_s": duration_s,
        "quick": quick,
        "runs": runs,
        "machine": dict(machine),
        "figures": [f.to_dict() for f in figures],
        "all_met": all(f.met for f in figures),
    }


_REQUIRED = {
    "schema": str,
    "created": str,
    "quick": bool,
    "runs": int,
    "machine": dict,
    "figures": list,
    "all_met": bool,
}
_MACHINE_KEYS = (
    "cpu_model",
    "cores",
    "memory_bytes",
    "engine_version",
    "compose_version",
    "python",
)
_SUMMARY_KEYS = ("median", "min", "max", "runs", "samples")


def validate_document(doc: Mapping[str, Any]) -> list[str]:
    """Every way ``doc`` departs from the result layout (empty when it conforms)."""
    problems: list[str] = []
    for key, kind in _REQUIRED.items():
        if not isinstance(doc.get(key), kind):
            problems.append(f"{key}: missing or not a {kind.__name__}")
    if doc.get("schema") not in (None, SCHEMA) and isinstance(doc.get("schema"), str):
        problems.append(f"schema: {doc['schema']!r} is not {SCHEMA!r}")
    for key in _MACHINE_KEYS:
        if key not in (doc.get("machine") or {}):
            problems.append(f"machine.{key}: missing")
    for i, fig in enumerate(doc.get("figures") or []):
        where = f"figures[{i}]"
        for key in ("id", "title", "compared_with"):
            if not isinstance(fig.get(key), str) or not fig.get(key):
                problems.append(f"{where}.{key}: missing")
        target = fig.get("target") or {}
        if target.get("kind") not in TARGET_KINDS:
            problems.append(f"{where}.target.kind: not one of {TARGET_KINDS}")
        if not isinstance(target.get("value"), int | float):
            problems.append(f"{where}.target.value: not a number")
        value = fig.get("value") or {}
        for key in _SUMMARY_KEYS:
            if key not in value:
                problems.append(f"{where}.value.{key}: missing")
        if not isinstance(fig.get("met"), bool):
            problems.append(f"{where}.met: not a bool")
    return problems


def format_seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def format_summary(summary: Mapping[str, Any] | None, unit: str) -> str:
    """``1.02x (0.98-1.10)`` or ``0.31 s (0.29-0.40)``."""
    if not summary:
        return "-"
    if unit == "s":
        return (
            f"{format_seconds(summary['median'])} "
            f"({format_seconds(summary['min'])}-{format_seconds(summary['max'])})"
        )
    if unit == "MB":
        return f"{summary['median']:.2f} MB ({summary['min']:.2f}-{summary['max']:.2f})"
    if unit == "%":
        return f"{summary['median']:.1f} % ({summary['min']:.1f}-{summary['max']:.1f})"
    if unit == "MB/s":
        return f"{summary['median']:.0f} MB/s ({summary['min']:.0f}-{summary['max']:.0f})"
    return f"{summary['median']:.2f}x ({summary['min']:.2f}-{summary['max']:.2f})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def results_table(figures: Sequence[Figure]) -> str:
    """The Markdown results table printed by ``invoke bench`` and kept in PERFORMANCE.md."""
    lines = [
        "| figure | compared with | target | median (min-max) | tool | raw | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        tool_unit = "MB/s" if f.target_kind == "min_ratio" else "s"
        # a pipe inside a cell (a shell pipeline in `compared_with`) would end the cell
        lines.append(
            f"| {_cell(f.title)} | {_cell(f.compared_with)} | {f.target_text} | "
            f"{format_summary(f.value, f.unit)} | {format_summary(f.tool, tool_unit)} | "
            f"{format_summary(f.raw, tool_unit)} | {'yes' if f.met else '**no**'} |"
        )
    return "\n".join(lines)
