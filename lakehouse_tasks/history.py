"""Deploy history: one JSON line per successful deploy or rollback, per environment.

``<state dir>/history/<env>.jsonl`` lists the deployments, oldest first. Beside it,
``<state dir>/history/<env>/<id>.compose.json`` holds what rollback needs to redeploy it.

What is stored for rollback, and why: the *resolved* compose configuration
(``docker compose config --format json``), not the compose files and env layering inputs.
The resolved config is self-contained - every ``${VAR}`` interpolated, ``env_file`` contents
inlined, relative paths made absolute, ``$$`` kept escaped - so compose can run it again as a
compose file with no env file at all, and it stays correct after the tracked compose files,
env files or ``.local.env`` secrets change (which is exactly when a rollback is wanted).
Storing the inputs instead would mean snapshotting several files plus the process
environment and re-running the layering. The price: it contains secrets, so the file is
created 0600 in a 0700 directory, and the state dir is gitignored. Image *ids* are recorded
separately so rollback can pin the exact images even when a tag has moved.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths
from .errors import ExitCode, LakehouseError
from .paths import state_dir


@dataclass(frozen=True)
class DeployRecord:
    """One successful deployment of an environment."""

    id: str
    environment: str
    time: str  # ISO 8601, UTC
    kind: str  # "deploy" | "rollback"
    config_hash: str
    project_name: str
    services: tuple[str, ...]
    images: Mapping[str, str]  # service -> image id that ran
    image_refs: Mapping[str, str] = field(default_factory=dict)  # service -> image reference
    profiles: tuple[str, ...] = ()
    git_commit: str | None = None
    rehearsal: bool = False
    rolled_back_to: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "time": self.time,
            "kind": self.kind,
            "config_hash": self.config_hash,
            "project_name": self.project_name,
            "services": list(self.services),
            "images": dict(self.images),
            "image_refs": dict(self.image_refs),
            "profiles": list(self.profiles),
            "git_commit": self.git_commit,
            "rehearsal": self.rehearsal,
            "rolled_back_to": self.rolled_back_to,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DeployRecord:
        return cls(
            id=str(raw["id"]),
            environment=str(raw["environment"]),
            time=str(raw.get("time", "")),
            kind=str(raw.get("kind", "deploy")),
            config_hash=str(raw.get("config_hash", "")),
            project_name=str(raw.get("project_name", "")),
            services=tuple(raw.get("services") or ()),
            images=dict(raw.get("images") or {}),
            image_refs=dict(raw.get("image_refs") or {}),
            profiles=tuple(raw.get("profiles") or ()),
            git_commit=raw.get("git_commit"),
            rehearsal=bool(raw.get("rehearsal", False)),
            rolled_back_to=raw.get("rolled_back_to"),
        )

    def same_deployment(self, other: DeployRecord) -> bool:
        """Same configuration and same images: redeploying one gives the other."""
        return self.config_hash == other.config_hash and dict(self.images) == dict(other.images)


def history_dir(root: Path) -> Path:
    path = state_dir(root) / "history"
    path.mkdir(parents=True, exist_ok=True)
    return path


def history_file(root: Path, environment: str) -> Path:
    return history_dir(root) / f"{environment}.jsonl"


def config_file(root: Path, record: DeployRecord) -> Path:
    return history_dir(root) / record.environment / f"{record.id}.compose.json"


def git_commit(path: Path) -> str | None:
    """The commit checked out in ``path`` (``None`` outside a git repository)."""
    return paths.git_commit(path)


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def new_id(existing: Sequence[DeployRecord], config_hash: str, when: str | None = None) -> str:
    """``20250101-120000-ab12cd34``: sortable, readable, unique within the history."""
    stamp = (when or now_iso()).replace("-", "").replace(":", "")[:15].replace("T", "-")
    base = f"{stamp}-{config_hash[:8]}"
    taken = {r.id for r in existing}
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def load(root: Path, environment: str) -> list[DeployRecord]:
    """Every recorded deployment of ``environment``, oldest first (bad lines are skipped)."""
    path = history_file(root, environment)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(DeployRecord.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return records


def append(root: Path, record: DeployRecord, config: Mapping[str, Any]) -> Path:
    """Store ``config`` (0600) and append ``record``; return the config file's path."""
    target = config_file(root, record)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o700)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh, indent=1, sort_keys=True)
    line = json.dumps(record.to_dict(), sort_keys=True)
    with history_file(root, record.environment).open("a") as fh:
        fh.write(line + "\n")
    return target


def current(records: Sequence[DeployRecord]) -> DeployRecord | None:
    """The deployment now running: the newest record."""
    return records[-1] if records else None


def select_previous(records: Sequence[DeployRecord], to: str | None = None) -> DeployRecord:
    """The deployment ``rollback`` returns to.

    With ``to``, that record (an id or a unique id prefix). Otherwise the newest earlier
    record that differs from the current one (config or images), so that deploying the same
    thing twice does not make rollback a no-op.
    """
    if not records:
        raise LakehouseError(
            "No deployment is recorded for this environment; deploy it first.",
            ExitCode.DEPLOY_FAILED,
        )
    environment = records[-1].environment
    if to:
        matches = [r for r in records if r.id == to] or [r for r in records if r.id.startswith(to)]
        if len(matches) != 1:
            what = "matches no" if not matches else "matches more than one"
            raise LakehouseError(
                f"--to {to} {what} recorded deployment of {environment}; see "
                f"`invoke history --env {environment}`.",
                ExitCode.BAD_INPUT,
            )
        return matches[0]
    latest = records[-1]
    for record in reversed(records[:-1]):
        if not record.same_deployment(latest):
            return record
    raise LakehouseError(
        f"There is no earlier deployment of {environment} that differs from the current one; "
        f"nothing to roll back to (see `invoke history --env {environment}`).",
        ExitCode.DEPLOY_FAILED,
    )


def listing(records: Sequence[DeployRecord]) -> list[dict[str, Any]]:
    """Rows for ``invoke history``: newest first, the current one marked."""
    latest = current(records)
    rows = []
    for record in reversed(records):
        rows.append(
            {
                **record.to_dict(),
                "current": latest is not None and record.id == latest.id,
            }
        )
    return rows
