"""Backups of an environment: logical database dumps, volume archives, a manifest.

A backup is a directory ``<dest>/<env>-<UTC timestamp>[-tag]/`` holding

* ``postgres/<service>.dump``   ``pg_dump -Fc`` of each PostgreSQL database (the services whose
  merged config sets ``POSTGRES_DB``), taken while the database runs;
* ``volumes/<volume>.tar.zst``  a tar of every other named volume of the stack, made by a
  throw-away container of one of the stack's own images and compressed on the host with
  ``zstd -1 -T0`` (``.tar.gz``, gzip -1, without the zstd program; :mod:`.compress`);
* ``plugins/...``               files contributed by plugins (``lakehouse_backup_artefacts``);
* ``manifest.json``             written last: what the backup holds, with sizes and sha256;
* ``verified.json``             written by ``backup.verify`` (time, deep or shallow, result).

The databases' own data volumes are *not* archived: their logical dumps cover them, restore
cleanly across PostgreSQL minor versions and are consistent without stopping anything.

A backup is assembled in ``<dest>/.tmp-<id>/`` and renamed into place only once complete, so
an interrupted backup never looks like a finished one. Services stopped for a consistent
archive are recorded in a state file first; :func:`recover_interrupted` restarts them if the
backup was killed before it could.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, compress
from .backends import backend_of_record
from .backends.compose import ComposeBackend
from .engine import commands as engine_commands
from .engine import volumes as engine_volumes
from .engine.client import Engine
from .errors import EngineError, ExitCode, LakehouseError, RefusedError
from .events import Event, EventKind
from .hooks.emit import emit_event
from .hooks.manager import get_plugin_manager
from .paths import git_commit, state_dir
from .ui import Output, Table, human_bytes

if TYPE_CHECKING:
    from .backends.base import Backend
    from .environment import Environment
    from .project import Project

MANIFEST = "manifest.json"
VERIFIED = "verified.json"
TMP_PREFIX = ".tmp-"
FORMAT_VERSION = 1
#: gzip level of volume archives: speed over ratio (lakehouse data is mostly parquet, which
#: is already compressed, so higher levels cost CPU time and gain little).
GZIP_LEVEL = 1
#: pg_dump's zlib level in the custom-format dumps: 1 dumps about twice as fast as its default
#: (6) for a few percent more bytes (docs/PERFORMANCE.md); pg_restore reads any level.
DUMP_COMPRESSION = 1
#: Free space kept in reserve at the destination beyond the estimate.
SPACE_MARGIN_BYTES = 64 * 1024 * 1024
#: Test hook: seconds to sleep after each volume archive is opened (the kill test uses it).
TEST_DELAY_ENV = "LAKEHOUSE_BACKUP_TEST_DELAY"

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


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database of the stack, found by ``POSTGRES_DB`` in a service's config."""

    service: str
    database: str
    user: str
    image: str
    volumes: tuple[str, ...]  # its data volume(s): covered by the dump, not archived


@dataclass(frozen=True)
class BackupPlan:
    """What a backup (or a restore) of a selection covers."""

    databases: tuple[Database, ...]
    volumes: Mapping[str, str]  # compose key -> engine volume name
    users: Mapping[str, tuple[str, ...]]  # compose key -> services that mount it


# ---- the stack seen as data to back up ------------------------------------------------------
def databases(project: Project) -> list[Database]:
    """Every service whose merged environment sets ``POSTGRES_DB``."""
    found = []
    raw_services = project.stack.raw.get("services") or {}
    for name, svc in sorted(project.stack.services.items()):
        environment = (raw_services.get(name) or {}).get("environment") or {}
        if isinstance(environment, list):  # compose normalises to a mapping; be lenient
            environment = dict(item.split("=", 1) for item in environment if "=" in item)
        db = environment.get("POSTGRES_DB")
        if not db:
            continue
        found.append(
            Database(
                service=name,
                database=str(db),
                user=str(environment.get("POSTGRES_USER") or "postgres"),
                image=svc.image,
                volumes=svc.volumes,
            )
        )
    return found


def volume_users(project: Project) -> dict[str, tuple[str, ...]]:
    """Compose volume key -> services mounting it (sorted)."""
    users: dict[str, list[str]] = {key: [] for key in project.stack.volumes}
    for name, svc in project.stack.services.items():
        for key in svc.volumes:
            users.setdefault(key, []).append(name)
    return {k: tuple(sorted(v)) for k, v in users.items()}


def plan(project: Project, only: Iterable[str] | None = None) -> BackupPlan:
    """The databases and volumes a selection covers.

    ``only`` items (comma lists allowed): ``db`` (every database), ``volumes`` (every
    non-database volume), a service name (its dump, or the volumes it mounts) or a volume key.
    Without ``only``: everything.
    """
    dbs = databases(project)
    users = volume_users(project)
    db_volumes = {v for d in dbs for v in d.volumes}
    archivable = {k: v for k, v in project.stack.volumes.items() if k not in db_volumes}
    selectors = [s.strip() for item in (only or []) for s in item.split(",") if s.strip()]
    if not selectors:
        return BackupPlan(tuple(dbs), archivable, users)
    chosen_dbs: dict[str, Database] = {}
    chosen_vols: dict[str, str] = {}
    by_service = {d.service: d for d in dbs}
    for sel in selectors:
        if sel in ("db", "dbs", "databases"):
            chosen_dbs.update(by_service)
        elif sel == "volumes":
            chosen_vols.update(archivable)
        elif sel in by_service:
            chosen_dbs[sel] = by_service[sel]
        elif sel in project.stack.services:
            mounted = [k for k in project.stack.services[sel].volumes if k in archivable]
            if not mounted:
                raise LakehouseError(
                    f"Service {sel!r} has no database and no named volume to back up; "
                    "choose db, volumes, a database service or a service with a volume."
                )
            chosen_vols.update({k: archivable[k] for k in mounted})
        elif sel in archivable:
            chosen_vols[sel] = archivable[sel]
        else:
            known = sorted({*by_service, *archivable, "db", "volumes"})
            raise LakehouseError(
                f"--only {sel!r} names no database, service or volume of the stack; "
                f"use one of: {', '.join(known)}."
            )
    return BackupPlan(
        tuple(chosen_dbs[k] for k in sorted(chosen_dbs)), dict(sorted(chosen_vols.items())), users
    )


# ---- what the engine holds of the stack ------------------------------------------------------
def running_services(project: Project, backend: Backend) -> list[str]:
    """The services with a running container on ``backend`` (sorted)."""
    return backend.running_services(project)


#: Images found to have tar and find (or not), asked once per process.
_TAR_PROBE: dict[str, bool] = {}


def _has_tools(project: Project, image: str) -> bool:
    """Whether ``image`` has ``tar`` and ``find`` (throw-away containers, cached)."""
    if image not in _TAR_PROBE:
        _TAR_PROBE[image] = engine_volumes.image_has_tools(image)
    return _TAR_PROBE[image]


def tool_image(project: Project, volume_key: str | None = None) -> str:
    """An image of the stack itself with tar and find: the owner's image of ``volume_key``
    when it has them, else a PostgreSQL image of the stack. Nothing is ever pulled."""
    candidates: list[str] = []
    if volume_key is not None:
        for svc in volume_users(project).get(volume_key, ()):
            candidates.append(project.stack.services[svc].image)
    candidates.extend(d.image for d in databases(project))
    candidates.extend(s.image for _, s in sorted(project.stack.services.items()))
    present = Engine().image_ids(c for c in candidates if c)
    for image in dict.fromkeys(candidates):
        if image and present.get(image) and _has_tools(project, image):
            return image
    raise LakehouseError(
        f"No image of the {project.env.name!r} stack with tar is present locally; deploy the "
        "stack once (so its images exist) before backing up or restoring volumes."
    )


def existing_volumes(project: Project) -> set[str]:
    return engine_volumes.volume_names()


def volume_sizes(project: Project, names: Mapping[str, str]) -> dict[str, int]:
    """Bytes used by each volume (compose key -> bytes), in one throw-away container."""
    present = existing_volumes(project)
    keys = [k for k, n in names.items() if n in present]
    if not keys:
        return {}
    sizes = engine_volumes.disk_usage(tool_image(project), [names[k] for k in keys])
    return dict(zip(keys, sizes, strict=True))


def database_size(project: Project, db: Database, backend: Backend) -> int:
    out = engine_commands.exec_output(
        backend.exec_target(project, db.service), "psql", "-U", db.user, "-d", db.database,
        "-tAc", "SELECT pg_database_size(current_database())",
    )  # fmt: skip
    try:
        return int(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return 0


def has_data(project: Project) -> bool:
    """Whether any of the stack's volumes exists and is non-empty (teardown asks first)."""
    present = existing_volumes(project)
    names = [n for n in project.stack.volumes.values() if n in present]
    if not names:
        return False
    try:
        image = tool_image(project)
    except LakehouseError:
        return True  # cannot look inside: assume the worst
    return engine_volumes.any_files(image, names)


# ---- free space -----------------------------------------------------------------------------
def free_space(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(dest: Path, needed: int, *, what: str = "backup") -> None:
    """Refuse (exit 7) when ``dest`` has less than ``needed`` plus a margin free."""
    free = free_space(dest)
    wanted = needed + SPACE_MARGIN_BYTES
    if free < wanted:
        raise RefusedError(
            f"Not enough free space for the {what} at {dest}: about {human_bytes(wanted)} "
            f"needed, {human_bytes(free)} free; free some space, prune old backups "
            "(`invoke backup.prune`) or choose another --dest."
        )


# ---- where backups live ---------------------------------------------------------------------
def default_dest(env: Environment) -> Path:
    raw = env.get("BACKUP_DIR") or ""
    if raw:
        path = Path(raw).expanduser()
        return path if path.is_absolute() else env.root / path
    return env.root / "backups"


def backup_id(env_name: str, when: _dt.datetime, tag: str | None = None) -> str:
    stamp = when.astimezone(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{env_name}-{stamp}" + (f"-{tag}" if tag else "")


_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def check_tag(tag: str | None) -> str | None:
    if tag is None or tag == "":
        return None
    if not _TAG.match(tag):
        raise LakehouseError(
            f"Backup tag {tag!r} is not usable in a directory name; use letters, digits, "
            "'.', '_' and '-' (at most 63 characters)."
        )
    return tag


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_backups(dest: Path, env_name: str | None = None) -> tuple[list[BackupInfo], list[Path]]:
    """Complete backups under ``dest`` (newest first) and incomplete ``.tmp-*`` leftovers.

    A leftover whose writer is still running is not reported.
    """
    backups: list[BackupInfo] = []
    leftovers: list[Path] = []
    if not dest.is_dir():
        return backups, leftovers
    for child in sorted(dest.iterdir()):
        if not child.is_dir():
            continue
        if child.name.startswith(TMP_PREFIX):
            pid_file = child / ".pid"
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                pid = 0
            if not (pid and pid != os.getpid() and _pid_alive(pid)):
                leftovers.append(child)
            continue
        manifest_path = child / MANIFEST
        if not manifest_path.is_file():
            continue
        try:
            manifest = BackupManifest.load(manifest_path)
        except LakehouseError:
            continue
        if env_name and manifest.environment != env_name:
            continue
        backups.append(BackupInfo(child, manifest, VerifyRecord.load(child / VERIFIED)))
    backups.sort(key=lambda b: b.time, reverse=True)
    return backups, leftovers


def find_backup(dest: Path, ident: str) -> BackupInfo:
    """The backup ``ident`` (an id under ``dest`` or a directory path)."""
    candidates = [Path(ident), dest / ident]
    for path in candidates:
        if (path / MANIFEST).is_file():
            return BackupInfo(
                path, BackupManifest.load(path / MANIFEST), VerifyRecord.load(path / VERIFIED)
            )
    raise LakehouseError(
        f"No backup {ident!r} in {dest}; list them with `invoke backup.list` (or pass --dest)."
    )


def find_or_fetch_backup(
    env: Environment, dest: Path, ident: str, out: Output | None = None
) -> BackupInfo:
    """The backup ``ident`` from ``dest``; when the host does not hold it, fetched back from a
    plugin's copy (``lakehouse_fetch_backup``, e.g. the off-site restic repository) into
    ``dest`` and its every checksum recomputed against its manifest (exit 6 on a mismatch,
    and the fetched copy is removed) before the caller touches anything."""
    try:
        return find_backup(dest, ident)
    except LakehouseError as missing:
        if os.sep in ident or "/" in ident:
            raise
        fetched = get_plugin_manager().fetch_backup(env=env, backup_id=ident, dest=dest)
        if fetched is None:
            raise missing from None
    if out is not None:
        out.info(f"Backup {ident} is not on this host; fetched it from its off-site copy")
    info = BackupInfo(
        fetched, BackupManifest.load(fetched / MANIFEST), VerifyRecord.load(fetched / VERIFIED)
    )
    try:
        check_checksums(info, out)
    except LakehouseError:
        shutil.rmtree(fetched, ignore_errors=True)
        raise
    return info


def latest_backup(
    env_name: str, dest: Path | None = None, *, root: Path | None = None
) -> BackupInfo | None:
    """The newest complete backup of ``env_name`` (deploy asks before risky changes)."""
    if dest is None:
        from .environment import load_environment

        dest = default_dest(load_environment(env_name, root=root, strict=False))
    backups, _ = list_backups(Path(dest), env_name)
    return backups[0] if backups else None


# ---- services stopped during a backup -------------------------------------------------------
def _stopped_glob(project: Project) -> str:
    return f"stopped-{project.compose.project_name}-*.json"


def _state_root(project: Project) -> Path:
    return state_dir(project.env.root)


def recover_interrupted(
    project: Project, out: Output | None = None, backend: Backend | None = None
) -> list[str]:
    """Start again the services that a killed backup or restore left stopped.

    Reads the state files written before services are stopped; a file whose writer is still
    running belongs to a backup in progress and is left alone. Returns the services started.
    """
    restarted: list[str] = []
    for path in sorted(_state_root(project).glob(_stopped_glob(project))):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        pid = int(data.get("pid", 0))
        if pid and pid != os.getpid() and _pid_alive(pid):
            continue
        services = [str(s) for s in data.get("services") or []]
        if services:
            if out is not None:
                out.warn(
                    f"An interrupted {data.get('reason', 'backup')} left {', '.join(services)} "
                    "stopped; starting them again."
                )
            try:
                # The record names the target it was written for, so a swarm backup killed
                # under a compose deploy is recovered on swarm (records from before the
                # backends have "compose" or "swarm" too).
                backend_of_record(data.get("target"), backend).start(
                    project,
                    services,
                    {str(k): int(v) for k, v in (data.get("replicas") or {}).items()},
                )
                restarted.extend(services)
            except EngineError as exc:
                if out is not None:
                    out.warn(f"Could not start {', '.join(services)}: {exc.message}")
        path.unlink(missing_ok=True)
    return restarted


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every ``finally`` restarts what it stopped."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


class Stopped(list[str]):
    """The services a :func:`services_stopped` block stopped. Once the block has ended,
    ``confirmed`` names those a probe of their own healthcheck found healthy while they were
    started again (a later wait for them need not probe them once more)."""

    def __init__(self, services: Iterable[str] = ()) -> None:
        super().__init__(services)
        self.confirmed: set[str] = set()


@contextlib.contextmanager
def services_stopped(
    project: Project,
    services: Iterable[str],
    *,
    reason: str = "backup",
    backend: Backend | None = None,
) -> Iterator[Stopped]:
    """Stop the running ``services`` for the duration of the block and start them again
    afterwards: on success, on failure, on Ctrl-C and on SIGTERM. The set (with the target
    and, on swarm, each service's replica count) is recorded in a state file first so
    :func:`recover_interrupted` can finish the job after a SIGKILL."""
    backend = backend or ComposeBackend()
    running = set(running_services(project, backend))
    chosen = Stopped(sorted(s for s in set(services) if s in running))
    if not chosen:
        yield chosen
        return
    replicas = backend.replicas(project, chosen)
    state = _state_root(project) / (
        f"stopped-{project.compose.project_name}-{os.getpid()}-{time.monotonic_ns()}.json"
    )
    state.write_text(
        json.dumps(
            {
                "project": project.compose.project_name,
                "environment": project.env.name,
                "services": chosen,
                "target": backend.name,
                "replicas": replicas,
                "pid": os.getpid(),
                "reason": reason,
                "time": _dt.datetime.now(_dt.UTC).isoformat(),
            }
        )
    )
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread: no handler, Ctrl-C only
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        backend.stop(project, chosen)
        yield chosen
    finally:
        try:
            chosen.confirmed = backend.start(project, chosen, replicas)
            state.unlink(missing_ok=True)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


# ---- making a backup ------------------------------------------------------------------------
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


class _Progress:
    """Per-artefact progress: a rich bar on a terminal, one line per artefact otherwise."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._rich: Any = None
        if out.err_is_tty and not out.json_mode:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TransferSpeedColumn,
            )

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=out.err_console,
                transient=False,
            )

    def __enter__(self) -> _Progress:
        if self._rich is not None:
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)

    def start(self, label: str, total: int | None) -> Any:
        if self._rich is None:
            self.out.info(f"{label} ...")
            return lambda n: None
        task = self._rich.add_task(label, total=total or None)
        return lambda n: self._rich.advance(task, n)


def _delay_for_tests() -> None:
    raw = os.environ.get(TEST_DELAY_ENV)
    if raw:
        time.sleep(float(raw))


def dump_database(
    project: Project,
    db: Database,
    workdir: Path,
    advance: Any,
    backend: Backend,
) -> Artefact:
    name = f"postgres/{db.service}.dump"
    path = workdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    container = backend.exec_target(project, db.service)
    result = engine_commands.exec_to_file(
        container,
        ["pg_dump", "-Fc", f"-Z{DUMP_COMPRESSION}", "-U", db.user, "-d", db.database],
        path,
        scrub=project.env.scrub,
        what=f"pg_dump of {db.service}",
        on_chunk=advance,
    )
    return Artefact(
        name=name,
        kind=KIND_DUMP,
        source=db.service,
        size=result.size,
        sha256=result.sha256,
        compression="none",
        raw_size=result.raw_size,
        database=db.database,
        user=db.user,
    )


def archive_volume(
    project: Project, key: str, volume: str, workdir: Path, advance: Any
) -> Artefact:
    codec = compress.for_archives()
    name = f"volumes/{key}{codec.suffix}"
    target = workdir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    image = tool_image(project, key)
    target.touch()
    _delay_for_tests()
    result = engine_volumes.archive_to_file(
        image,
        volume,
        target,
        gzip_level=GZIP_LEVEL,
        compress_argv=codec.compress if codec is not compress.GZIP else None,
        scrub=project.env.scrub,
        what=f"archive of volume {key}",
        on_chunk=advance,
    )
    return Artefact(
        name=name,
        kind=KIND_VOLUME,
        source=key,
        size=result.size,
        sha256=result.sha256,
        compression=codec.name,
        raw_size=result.raw_size,
    )


def estimate(
    project: Project, selection: BackupPlan, backend: Backend
) -> tuple[dict[str, int], dict[str, int]]:
    """Uncompressed bytes per volume key and per database service."""
    vols = volume_sizes(project, selection.volumes) if selection.volumes else {}
    dbs = {d.service: database_size(project, d, backend) for d in selection.databases}
    return vols, dbs


def _new_workdir(dest: Path, env_name: str, tag: str | None) -> tuple[str, Path]:
    now = _dt.datetime.now(_dt.UTC)
    ident = backup_id(env_name, now, tag)
    n = 1
    base = ident
    while (dest / ident).exists() or (dest / f"{TMP_PREFIX}{ident}").exists():
        n += 1
        ident = f"{base}.{n}"
    workdir = dest / f"{TMP_PREFIX}{ident}"
    workdir.mkdir(parents=True)
    (workdir / ".pid").write_text(str(os.getpid()))
    return ident, workdir


def _check_databases_running(project: Project, selection: BackupPlan, backend: Backend) -> None:
    if not selection.databases:
        return
    running = set(running_services(project, backend))
    down = [d.service for d in selection.databases if d.service not in running]
    if down:
        raise LakehouseError(
            f"Database service{'s' if len(down) > 1 else ''} {', '.join(down)} of "
            f"{project.env.name!r} {'are' if len(down) > 1 else 'is'} not running, so no dump "
            "can be taken; deploy the stack first, or back up volumes only with --only volumes."
        )


def create_backup(
    project: Project,
    *,
    dest: Path | str | None = None,
    only: Iterable[str] | None = None,
    tag: str | None = None,
    online: bool = False,
    out: Output | None = None,
    backend: Backend | None = None,
) -> BackupManifest:
    """Back up ``project`` into ``dest`` and return the manifest of the complete backup.

    ``backend``: where the stack runs (default compose); a swarm stack of the same name is
    dumped through ``docker exec`` into a running task, its services stopped by scaling them
    to 0 and back.

    Refuses (exit 7) before writing anything when the destination lacks space; fails with the
    failing command's error otherwise. Emits BACKUP_SUCCEEDED or BACKUP_FAILED.
    """
    out = out or Output()
    tag = check_tag(tag)
    started = time.monotonic()
    backend = backend or ComposeBackend()
    recover_interrupted(project, out, backend)
    dest_path = Path(dest).expanduser().absolute() if dest else default_dest(project.env)
    selection = plan(project, only)
    env_name = project.env.name
    workdir: Path | None = None
    try:
        _check_databases_running(project, selection, backend)
        vol_sizes, db_sizes = estimate(project, selection, backend)
        check_free_space(dest_path, sum(vol_sizes.values()) + sum(db_sizes.values()))
        ident, workdir = _new_workdir(dest_path, env_name, tag)
        out.info(f"Backing up {env_name!r} into {dest_path / ident}")
        artefacts: list[Artefact] = []
        # Side by side (docs/BACKUP.md): every database dump starts at once (each is consistent
        # by itself, taken while its database runs, as before), and so does the stop of the
        # volumes' users; once they are stopped every volume is archived at once. The users
        # are down only while the archives run, not while the dumps do.
        with (
            _Progress(out) as progress,
            ThreadPoolExecutor(
                max_workers=max(1, len(selection.databases) + len(selection.volumes)),
                thread_name_prefix="backup",
            ) as pool,
        ):
            dumps = [
                pool.submit(
                    dump_database,
                    project,
                    db,
                    workdir,
                    progress.start(f"dump {db.service}", db_sizes.get(db.service)),
                    backend,
                )
                for db in selection.databases
            ]
            archives: list[Future[Artefact]] = []
            try:
                if selection.volumes:
                    stop: set[str] = set()
                    if not online:
                        for key in selection.volumes:
                            stop.update(selection.users.get(key, ()))
                    else:
                        out.warn(
                            "--online: volumes are archived while their services write to "
                            "them; the copy may be inconsistent (fuzzy)."
                        )
                    with services_stopped(project, stop, reason="backup", backend=backend):
                        archives = [
                            pool.submit(
                                archive_volume,
                                project,
                                key,
                                volume,
                                workdir,
                                progress.start(f"archive {key}", vol_sizes.get(key)),
                            )
                            for key, volume in selection.volumes.items()
                        ]
                        wait(archives)
                        artefacts_of(archives)  # a failed archive fails before the start
            finally:
                wait([*dumps, *archives])
            artefacts.extend(artefacts_of(dumps))
            artefacts.extend(artefacts_of(archives))
        for extra in get_plugin_manager().backup_artefacts(project=project, workdir=workdir):
            path = Path(extra.path)
            artefacts.append(
                Artefact(
                    name=path.relative_to(workdir.resolve()).as_posix(),
                    kind=KIND_PLUGIN,
                    source=str(extra.kind),
                    size=path.stat().st_size,
                    sha256=sha256_file(path),
                    raw_size=path.stat().st_size,
                )
            )
        images = project.stack.images()
        ids = Engine().image_ids(images.values())
        manifest = BackupManifest(
            id=ident,
            environment=env_name,
            project=project.compose.project_name,
            time=_dt.datetime.now(_dt.UTC),
            tag=tag,
            tool_version=__version__,
            git_commit=git_commit(project.env.root),
            config_hash=project.stack.config_hash,
            online=online,
            images={svc: {"image": ref, "id": ids.get(ref)} for svc, ref in sorted(images.items())},
            artefacts=tuple(artefacts),
            duration_seconds=time.monotonic() - started,
        )
        _write_json(workdir / MANIFEST, manifest.to_dict())
        (workdir / ".pid").unlink(missing_ok=True)
        final = dest_path / ident
        os.rename(workdir, final)
        workdir = None
    except BaseException as exc:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        if isinstance(exc, (Exception, KeyboardInterrupt)):
            reason = exc.message if isinstance(exc, LakehouseError) else type(exc).__name__
            emit_event(
                Event(
                    EventKind.BACKUP_FAILED,
                    env_name,
                    f"Backup of {env_name} failed: {reason}",
                    details={"dest": str(dest_path)},
                ),
                project.env,
            )
        raise
    emit_event(
        Event(
            EventKind.BACKUP_SUCCEEDED,
            env_name,
            f"Backup {manifest.id} of {env_name} completed ({human_bytes(manifest.size)})",
            details={"id": manifest.id, "path": str(final), "size": manifest.size},
        ),
        project.env,
    )
    get_plugin_manager().post_backup(project=project, manifest_path=final / MANIFEST)
    return manifest


def artefacts_of(futures: Sequence[Future[Artefact]]) -> list[Artefact]:
    """The artefacts in submission order; the first failure is raised."""
    return [f.result() for f in futures]


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# ---- verification ---------------------------------------------------------------------------
@dataclass
class VerifyResult:
    backup: str
    deep: bool
    artefacts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"backup": self.backup, "deep": self.deep, "ok": True, "artefacts": self.artefacts}


def check_checksums(info: BackupInfo, out: Output | None = None) -> list[dict[str, Any]]:
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


# ---- rendering ------------------------------------------------------------------------------
def manifest_table(manifest: BackupManifest, path: Path | None = None) -> Table:
    rows: list[Mapping[str, Any]] = [
        {
            "artefact": a.name,
            "kind": a.kind,
            "source": a.source,
            "size": human_bytes(a.size),
            "raw": human_bytes(a.raw_size),
            "sha256": a.sha256[:12],
        }
        for a in manifest.artefacts
    ]
    return Table(
        columns=[
            ("artefact", "ARTEFACT"),
            ("kind", "KIND"),
            ("source", "SOURCE"),
            ("size", "SIZE"),
            ("raw", "UNCOMPRESSED"),
            ("sha256", "SHA256"),
        ],
        rows=rows,
        title=f"Backup {manifest.id}",
        caption=(
            f"{len(rows)} artefacts, {human_bytes(manifest.size)} in "
            f"{manifest.duration_seconds:.1f}s" + (f" at {path}" if path else "")
        ),
    )


def where_label(local: bool, copies: Sequence[Any]) -> str:
    """``local``, ``off-site`` or ``both`` (another location's name when a plugin says so)."""
    places = sorted({c.location for c in copies})
    if local and places:
        return "both" if places == ["off-site"] else "local, " + ", ".join(places)
    if places:
        return ", ".join(places)
    return "local"


def backups_table(
    backups: Sequence[BackupInfo], leftovers: Sequence[Path], copies: Sequence[Any] = ()
) -> Table:
    """Local backups and (``copies``: ``BackupCopy`` from plugins) where each one lives."""
    by_id: dict[str, list[Any]] = {}
    for copy in copies:
        by_id.setdefault(copy.backup_id, []).append(copy)
    rows: list[dict[str, Any]] = [
        {
            "id": b.id,
            "time": b.time.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "size": human_bytes(b.size),
            "tag": b.manifest.tag or "",
            "verified": b.verified.label if b.verified else "no",
            "where": where_label(True, by_id.get(b.id, ())),
            "_time": b.time,
        }
        for b in backups
    ]
    local = {b.id for b in backups}
    for ident, held in by_id.items():
        if ident in local:
            continue
        first = held[0]
        rows.append(
            {
                "id": ident,
                "time": first.time.astimezone(_dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
                "size": human_bytes(first.size) if first.size else "-",
                "tag": "",
                "verified": "-",
                "where": where_label(False, held),
                "_time": first.time,
            }
        )
    rows.sort(key=lambda r: r["_time"], reverse=True)
    for row in rows:
        del row["_time"]
    caption = ""
    if leftovers:
        caption = (
            f"{len(leftovers)} incomplete backup(s) left by an interrupted run: "
            + ", ".join(p.name for p in leftovers)
            + " (`invoke backup.prune` removes them)"
        )
    columns = [
        ("id", "ID"),
        ("time", "TIME"),
        ("size", "SIZE"),
        ("tag", "TAG"),
        ("verified", "VERIFIED"),
    ]
    if copies:
        columns.append(("where", "WHERE"))
    return Table(
        columns=columns,
        rows=list[Mapping[str, Any]](rows),
        title="Backups",
        caption=caption,
    )
