"""What a backup is on disk: its artefacts, manifest, verify record and checksums.

A backup is a directory ``<dest>/<env>-<UTC timestamp>[-tag]/`` holding database dumps
(``postgres/<service>.dump``), volume archives (``volumes/<volume>.tar.zst``), plugin files
(``plugins/...``), ``manifest.json`` (written last: what the backup holds, with sizes and
sha256) and ``verified.json`` (written by ``backup.verify``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExitCode, LakehouseError
from ..notices import Notices
from ..paths import write_atomic

if TYPE_CHECKING:
    pass

MANIFEST = "manifest.json"
VERIFIED = "verified.json"
TMP_PREFIX = ".tmp-"
FORMAT_VERSION = 1


KIND_DUMP = "postgres-dump"
KIND_VOLUME = "volume-archive"
KIND_PLUGIN = "plugin"


# ---- data -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Artefact:
    """One file of a backup, as the manifest records it."""

    name: str  # path relative to the backup directory, e.g. volumes/minio-data.tar.gz
    kind: str  # postgres-dump | volume-archive | plugin
    source: str  # service (dumps), compose volume key (archives), plugin kind (plugins)
    size: int
    sha256: str
    compression: str = "none"  # none | gzip (a dump is pg_dump's own compressed format)
    raw_size: int = 0  # bytes before compression (what a restore needs on the volume)
    database: str = ""  # dumps only
    user: str = ""  # dumps only: the role that owns the database

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "size": self.size,
            "sha256": self.sha256,
            "compression": self.compression,
            "raw_size": self.raw_size,
        }
        if self.kind == KIND_DUMP:
            data["database"] = self.database
            data["user"] = self.user
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Artefact:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            source=str(data.get("source", "")),
            size=int(data.get("size", 0)),
            sha256=str(data["sha256"]),
            compression=str(data.get("compression", "none")),
            raw_size=int(data.get("raw_size", 0)),
            database=str(data.get("database", "")),
            user=str(data.get("user", "")),
        )


@dataclass(frozen=True)
class BackupManifest:
    """What ``manifest.json`` holds."""

    id: str
    environment: str
    project: str
    time: _dt.datetime
    tag: str | None
    tool_version: str
    git_commit: str | None
    config_hash: str
    online: bool
    images: Mapping[str, Mapping[str, str | None]]  # service -> {"image": ref, "id": sha}
    artefacts: tuple[Artefact, ...]
    duration_seconds: float = 0.0
    format: int = FORMAT_VERSION

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artefacts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "id": self.id,
            "environment": self.environment,
            "project": self.project,
            "time": self.time.isoformat(),
            "tag": self.tag,
            "tool_version": self.tool_version,
            "git_commit": self.git_commit,
            "config_hash": self.config_hash,
            "online": self.online,
            "duration_seconds": round(self.duration_seconds, 3),
            "images": {k: dict(v) for k, v in self.images.items()},
            "artefacts": [a.to_dict() for a in self.artefacts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackupManifest:
        return cls(
            id=str(data["id"]),
            environment=str(data["environment"]),
            project=str(data.get("project", "")),
            time=_dt.datetime.fromisoformat(str(data["time"])),
            tag=data.get("tag"),
            tool_version=str(data.get("tool_version", "")),
            git_commit=data.get("git_commit"),
            config_hash=str(data.get("config_hash", "")),
            online=bool(data.get("online", False)),
            images={str(k): dict(v) for k, v in (data.get("images") or {}).items()},
            artefacts=tuple(Artefact.from_dict(a) for a in data.get("artefacts") or []),
            duration_seconds=float(data.get("duration_seconds", 0.0)),
            format=int(data.get("format", FORMAT_VERSION)),
        )

    @classmethod
    def load(cls, path: Path) -> BackupManifest:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LakehouseError(
                f"The backup manifest {path} cannot be read ({exc}); the backup is damaged.",
                ExitCode.INTEGRITY_FAILED,
            ) from None


@dataclass(frozen=True)
class VerifyRecord:
    """What ``verified.json`` holds: the last verification of a backup."""

    time: _dt.datetime
    deep: bool
    ok: bool
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "deep": self.deep,
            "ok": self.ok,
            "problem": self.problem,
        }

    @classmethod
    def load(cls, path: Path) -> VerifyRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                time=_dt.datetime.fromisoformat(str(data["time"])),
                deep=bool(data.get("deep", False)),
                ok=bool(data.get("ok", False)),
                problem=str(data.get("problem", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def label(self) -> str:
        if not self.ok:
            return "FAILED"
        return "deep" if self.deep else "checksums"


@dataclass(frozen=True)
class BackupInfo:
    """A complete backup found on disk."""

    path: Path
    manifest: BackupManifest
    verified: VerifyRecord | None = None

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def time(self) -> _dt.datetime:
        return self.manifest.time

    @property
    def environment(self) -> str:
        return self.manifest.environment

    @property
    def size(self) -> int:
        return self.manifest.size

    @property
    def is_verified(self) -> bool:
        return self.verified is not None and self.verified.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "time": self.time.isoformat(),
            "tag": self.manifest.tag,
            "size": self.size,
            "artefacts": len(self.manifest.artefacts),
            "path": str(self.path),
            "verified": self.verified.to_dict() if self.verified else None,
        }


def sha256_file(path: Path, on_chunk: Any = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1024 * 1024)
            if not chunk:
                break
            digest.update(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n", fsync=True)


# ---- verification ---------------------------------------------------------------------------
@dataclass
class VerifyResult:
    backup: str
    deep: bool
    artefacts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"backup": self.backup, "deep": self.deep, "ok": True, "artefacts": self.artefacts}


def check_checksums(info: BackupInfo, out: Notices | None = None) -> list[dict[str, Any]]:
    """Recompute every artefact's size and sha256; exit 6 naming the first that differs."""
    rows = []
    for art in info.manifest.artefacts:
        path = info.path / art.name
        if not path.is_file():
            raise LakehouseError(
                f"Backup {info.id} is corrupted: artefact {art.name} is missing; restore "
                "from another backup.",
                ExitCode.INTEGRITY_FAILED,
            )
        actual = sha256_file(path)
        size = path.stat().st_size
        if actual != art.sha256 or size != art.size:
            raise LakehouseError(
                f"Backup {info.id} is corrupted: artefact {art.name} does not match its "
                f"checksum (sha256 {actual[:12]}..., expected {art.sha256[:12]}...); restore "
                "from another backup.",
                ExitCode.INTEGRITY_FAILED,
            )
        rows.append({"artefact": art.name, "kind": art.kind, "size": size, "sha256": "ok"})
    return rows
