"""The tool's own configuration hash of every service, stamped on its containers as a label.

``deploy --dry-run`` and upgrade planning must say which containers a deploy recreates.
Compose's own ``com.docker.compose.config-hash`` label has not always matched
``docker compose config --hash`` (docker/compose#9211, and #10907 with ``depends_on``, which
this stack uses everywhere), so a plan built on it could announce recreations that never
happen. The tool therefore hashes each service's merged configuration itself and stamps the
hash on the containers through one more compose file, ``<state dir>/config-hash/<project>.yaml``
(``services: {name: {labels: {io.lakehouse.config-hash: ...}}}``), always the last of the
project's files. The hash leaves that label out, so writing the file does not change it; the
file is rewritten before every deploy's ``up`` and only when a hash changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .paths import state_dir, write_atomic

LABEL = "io.lakehouse.config-hash"
INPUTS_KEY = "x-lakehouse-inputs"


def inputs_key(files: Sequence[Path], profiles: Sequence[str]) -> str:
    """Which compose files and profiles the label file was written for."""
    text = "\n".join([*(str(f) for f in files), "--", *profiles])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def labels_file(root: Path, project_name: str, inputs: str = "") -> Path:
    """The project's label file. It is reset to no services when missing or written for other
    compose files or profiles: it may only name services of the files it is merged with (a
    service it names that no other file defines would make every compose command fail)."""
    path = state_dir(root) / "config-hash" / f"{project_name}.yaml"
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = None
    if not isinstance(current, dict) or current.get(INPUTS_KEY) != inputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({INPUTS_KEY: inputs, "services": {}}) + "\n")
    return path


def service_hash(service: Mapping[str, Any]) -> str:
    """sha256 of one service's merged configuration, without the tool's own label."""
    clean = dict(service)
    labels = {k: v for k, v in (service.get("labels") or {}).items() if k != LABEL}
    if labels:
        clean["labels"] = labels
    else:
        clean.pop("labels", None)
    canonical = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def service_hashes(config: Mapping[str, Any]) -> dict[str, str]:
    return {name: service_hash(raw) for name, raw in (config.get("services") or {}).items()}


def render(hashes: Mapping[str, str], inputs: str = "") -> str:
    """The label file's text (JSON is YAML)."""
    document = {
        INPUTS_KEY: inputs,
        "services": {name: {"labels": {LABEL: value}} for name, value in sorted(hashes.items())},
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def write_labels(path: Path, hashes: Mapping[str, str]) -> bool:
    """Write the label file when its content changes (keeping its inputs key); whether it did."""
    try:
        old = path.read_text()
        inputs = str(json.loads(old).get(INPUTS_KEY, ""))
    except (OSError, ValueError, AttributeError):
        old, inputs = "", ""
    text = render(hashes, inputs)
    if old == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)
    return True
