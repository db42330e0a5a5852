"""Generate the tables of docs/INFRASTRUCTURE.md from the merged compose configurations.

    python -m tests.contract.gen_infrastructure_doc      # rewrite the generated block
    UPDATE_DOCS=1 pytest tests/contract/test_infrastructure_doc.py   # same, from the test

Only the text between the BEGIN/END GENERATED markers is replaced; the prose around it is
written by hand.
"""

from __future__ import annotations

import sys
from decimal import Decimal

from .stack import REPO, SERVICES, human_memory, is_oneshot, memory_bytes, merged_config, replicas

DOC = REPO / "docs" / "INFRASTRUCTURE.md"
BEGIN = "<!-- BEGIN GENERATED: services -->"
END = "<!-- END GENERATED: services -->"
ORDER = [*SERVICES, "tls-proxy"]


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out


def _cpu(value: object) -> str:
    return str(Decimal(str(value)).normalize())


def _limits(service: dict, part: str) -> str:
    res = service["deploy"]["resources"][part]
    return f"{_cpu(res['cpus'])} CPU / {human_memory(memory_bytes(res['memory']))}"


def _health(service: dict) -> str:
    check = service.get("healthcheck")
    if not check:
        return "- (one-shot: exit code)"
    kind, *rest = check["test"]
    text = rest[0] if kind == "CMD-SHELL" else " ".join(rest)
    # `config` prints compose escapes (`$$`); show what the container runs.
    return "`" + text.replace("$$", "$") + "`"


def _ports(service: dict) -> str:
    ports = [
        f"{p.get('host_ip', '')}:{p['published']}->{p['target']}"
        for p in service.get("ports", [])
        if p.get("published")
    ]
    return ", ".join(ports) if ports else "-"


def generate() -> str:
    dev, staging = merged_config("dev"), merged_config("staging", ("tls",))
    prod = merged_config("prod")
    lines: list[str] = ["", "### Services", ""]
    rows = []
    for name in ORDER:
        s = prod["services"][name]
        deps = (
            ", ".join(
                f"{d} ({'healthy' if spec['condition'] == 'service_healthy' else 'completed'})"
                for d, spec in sorted((s.get("depends_on") or {}).items())
            )
            or "-"
        )
        layer = s["labels"].get("io.lakehouse.layer", "-")
        kind = "one-shot" if is_oneshot(s) else "long-running"
        if name == "tls-proxy":
            kind += " (staging `tls` profile, prod)"
        rows.append([f"`{name}`", layer, kind, f"`{s['image']}`", deps])
    lines += _rows(["service", "layer", "kind", "image (pinned default)", "waits for"], rows)

    lines += ["", "### Health checks", ""]
    rows = [[f"`{n}`", _health(prod["services"][n])] for n in ORDER]
    lines += _rows(["service", "probe"], rows)

    lines += ["", "### Resources (limits / reservations)", ""]
    rows = []
    for name in ORDER:
        cells = [f"`{name}`"]
        for config in (prod, staging, dev):
            s = config["services"].get(name)
            if s is None:
                cells += ["-", "-"]
            elif replicas(s) == 0:
                cells += ["not started", "not started"]
            else:
                cells += [_limits(s, "limits"), _limits(s, "reservations")]
        rows.append(cells)
    lines += _rows(
        [
            "service",
            "prod limit",
            "prod reservation",
            "staging limit",
            "staging reservation",
            "dev limit",
            "dev reservation",
        ],
        rows,
    )

    lines += ["", "### Published ports (host address:host port -> container port)", ""]
    rows = []
    for name in ORDER:
        cells = [f"`{name}`"]
        for config in (dev, staging, prod):
            s = config["services"].get(name)
            cells.append("-" if s is None else _ports(s))
        rows.append(cells)
    lines += _rows(["service", "dev", "staging (with `tls` profile)", "prod"], rows)

    lines += ["", "### Volumes", ""]
    mounts: dict[str, list[str]] = {}
    for name in ORDER:
        for m in prod["services"][name].get("volumes", []):
            if m["type"] == "volume":
                mounts.setdefault(m["source"], []).append(f"`{name}`:{m['target']}")
    rows = [[f"`{v}`", ", ".join(mounts.get(v, ["-"]))] for v in sorted(prod["volumes"])]
    lines += _rows(["named volume", "mounted by"], rows)
    return "\n".join(lines) + "\n"


def render(document: str) -> str:
    """The document with its generated block replaced by freshly generated tables."""
    head, sep, rest = document.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{DOC} lacks the {BEGIN} / {END} markers")
    return head + BEGIN + "\n" + generate() + "\n" + END + tail


def main() -> int:
    current = DOC.read_text()
    updated = render(current)
    if updated != current:
        DOC.write_text(updated)
        print(f"rewrote the generated tables of {DOC.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
