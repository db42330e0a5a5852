"""Restore an environment from a backup, and the deep check of ``backup.verify --deep``.

Order of a restore (each step can refuse before anything is changed, until step 5):

1. every checksum is recomputed: a corrupted backup is refused (exit 6, naming the artefact);
   meanwhile the selection is checked and the free space measured (the old data of each
   volume is kept aside, and each database loaded beside the current one, until the end);
2. a backup of another environment is refused (exit 7) unless ``allow_other_env``;
3. too little free space is refused (exit 7);
4. a safety backup of the current state is taken (unless ``safety_backup=False``);
5. the affected services are stopped (recorded, like a backup, for ``recover_interrupted``);
   each volume's current content is copied into ``<volume>-pre-restore-<id>``, the volume is
   cleared and the archive extracted into it; each dump is ``pg_restore``-d (streamed through
   ``docker exec -i``) into a new ``<database>__restoring``, which replaces the current
   database only once it is complete;
6. the services start again and must become healthy; the set-aside volumes are then removed.
   If a volume restore fails, its old content is copied back from the set-aside volume; a
   database whose dump fails to load keeps its current content.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends.compose import ComposeBackend
from .compress import decompress_argv
from .data.backup import _Progress, create_backup
from .data.maintenance import recover_interrupted, services_stopped
from .data.manifest import KIND_DUMP, KIND_VOLUME, BackupInfo, check_checksums
from .data.plan import (
    Database,
    database_size,
    databases,
    existing_volumes,
    has_data,
    running_services,
    tool_image,
    volume_sizes,
    volume_users,
)
from .data.store import check_free_space
from .engine import commands as engine_commands
from .engine import volumes as engine_volumes
from .engine.client import Engine
from .errors import EngineError, ExitCode, LakehouseError, RefusedError
from .events import Event, EventKind
from .hooks.emit import emit_event
from .ui import Output, Table

if TYPE_CHECKING:
    from .backends.base import Backend
    from .project import Project

#: How long restored services get to become healthy.
HEALTH_TIMEOUT_S = 300.0
#: Label on the volumes holding the pre-restore content.
ASIDE_LABEL = "io.lakehouse.pre-restore"


@dataclass
class RestoreResult:
    backup: str
    environment: str
    safety_backup: str | None
    restored: list[dict[str, Any]] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "environment": self.environment,
            "safety_backup": self.safety_backup,
            "restored": self.restored,
            "services": self.services,
            "duration_seconds": round(self.duration_seconds, 3),
        }


def restore_table(result: RestoreResult) -> Table:
    return Table(
        columns=[("artefact", "ARTEFACT"), ("target", "RESTORED INTO"), ("status", "STATUS")],
        rows=list[Mapping[str, Any]](result.restored),
        title=f"Restore of {result.environment} from {result.backup}",
        caption=(
            f"safety backup: {result.safety_backup or 'none'}; services restarted: "
            f"{', '.join(result.services) or 'none'}; {result.duration_seconds:.1f}s"
        ),
        status_column="status",
    )


# ---- deep verification ----------------------------------------------------------------------


# ---- restore --------------------------------------------------------------------------------
def _selected(info: BackupInfo, only: Iterable[str] | None, project: Project) -> list[Any]:
    selectors = [s.strip() for item in (only or []) for s in item.split(",") if s.strip()]
    arts = [a for a in info.manifest.artefacts if a.kind in (KIND_DUMP, KIND_VOLUME)]
    if not selectors:
        return arts
    users = volume_users(project)
    chosen = []
    for art in arts:
        for sel in selectors:
            if (
                (sel in ("db", "dbs", "databases") and art.kind == KIND_DUMP)
                or (sel == "volumes" and art.kind == KIND_VOLUME)
                or sel == art.source
                or (art.kind == KIND_VOLUME and sel in users.get(art.source, ()))
            ):
                chosen.append(art)
                break
    if not chosen:
        raise LakehouseError(
            f"--only {', '.join(selectors)} matches no artefact of backup {info.id}; "
            "use db, volumes, a service or a volume key it contains."
        )
    return chosen


def _clients(project: Project, databases: Iterable[str]) -> set[str]:
    """The services that declare a dependency on any of ``databases`` (``depends_on``): the
    ones holding connections to it and caching what they read from it.

    Services further down the chain (Trino, Spark and Superset behind the Hive metastore)
    never talk to the database; they keep running (their queries through the stopped client
    fail for the length of the restore, as they would if it were stopped), so a restore of
    one database is not an outage of the whole stack, and it ends sooner: each stopped
    service has to be started and found healthy again, layer by layer."""
    targets = set(databases)
    return {
        name
        for name, svc in project.stack.services.items()
        if name not in targets and any(dep in targets for dep in svc.depends_on)
    }


def _aside_name(volume: str, backup_id: str) -> str:
    return f"{volume}-pre-restore-{backup_id}"


def restore_volume(
    project: Project,
    info: BackupInfo,
    art: Any,
    advance: Any,
    asides: dict[str, str],
    backend: Backend,
) -> str:
    key = art.source
    volume = project.stack.volumes.get(key)
    if volume is None:
        raise LakehouseError(
            f"Backup {info.id} holds volume {key!r}, which the {project.env.name!r} stack does "
            "not define; leave it out with --only."
        )
    image = tool_image(project, key)
    if volume not in existing_volumes(project):
        backend.create_volume(project, key, volume)
    else:
        aside = _aside_name(volume, info.id)
        engine_volumes.create(aside, labels={ASIDE_LABEL: volume})
        engine_volumes.copy(
            image, volume, aside, scrub=project.env.scrub, what=f"copy of volume {volume}"
        )
        asides[volume] = aside
        engine_volumes.clear(image, volume)
    engine_volumes.extract_from_file(
        image,
        volume,
        info.path / art.name,
        gunzip=art.compression == "gzip",
        decompress_argv=(
            decompress_argv(art.compression) if art.compression not in ("gzip", "none") else None
        ),
        scrub=project.env.scrub,
        what=f"restore of volume {key}",
        on_chunk=advance,
    )
    return volume


#: Suffix of the database a dump is restored into before it takes the real one's place.
STAGING_SUFFIX = "__restoring"


def staging_name(database: str) -> str:
    """``<database>__restoring``, cut so it stays within PostgreSQL's 63-byte names."""
    room = 63 - len(STAGING_SUFFIX.encode())
    base = database.encode()[:room].decode(errors="ignore")
    return base + STAGING_SUFFIX


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def restore_database(
    project: Project,
    db: Database,
    info: BackupInfo,
    art: Any,
    advance: Any,
    backend: Backend,
) -> None:
    """Restore ``art`` into a new database beside the current one, then swap them.

    The dump goes into ``<database>__restoring`` (``pg_restore --single-transaction``); only
    when it is complete is the current database dropped and the new one renamed into its
    place. A restore that fails (a dump that does not load, a full disk, Ctrl-C) drops the
    half-made copy and leaves the current database as it was. The rename is instantaneous;
    the drop of the old one is the DROP the plain drop-and-recreate did first.
    """
    container = backend.exec_target(project, db.service)
    staging_db = staging_name(db.database)
    name, staging, owner = _quoted(db.database), _quoted(staging_db), _quoted(db.user)

    def psql(*commands: str) -> None:
        # Each -c is its own request (DROP DATABASE refuses to run in a transaction block);
        # ON_ERROR_STOP ends at the first failing one.
        args: list[str] = []
        for sql in commands:
            args += ["-c", sql]
        engine_commands.exec_output(
            container, "psql", "-v", "ON_ERROR_STOP=1", "-U", db.user, "-d", "postgres", *args
        )

    psql(
        f"DROP DATABASE IF EXISTS {staging} WITH (FORCE)",
        f"CREATE DATABASE {staging} OWNER {owner}",
    )
    try:
        engine_commands.exec_from_file(
            container,
            ["pg_restore", "-U", db.user, "-d", staging_db, "--exit-on-error",
             "--single-transaction"],
            info.path / art.name,
            scrub=project.env.scrub,
            what=f"pg_restore into {db.service}",
            on_chunk=advance,
        )  # fmt: skip
    except BaseException:
        try:
            psql(f"DROP DATABASE IF EXISTS {staging} WITH (FORCE)")
        except LakehouseError:
            pass  # the next restore drops it first
        raise
    try:
        psql(
            f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
            f"ALTER DATABASE {staging} RENAME TO {name}",
        )
    except EngineError as exc:
        raise LakehouseError(
            f"The dump of {db.service} was restored into database {staging_db!r}, "
            f"but it could not take the place of {db.database!r} ({exc.message}); rename it "
            "with ALTER DATABASE in psql.",
            ExitCode.DEPLOY_FAILED,
        ) from None


def check_restorable(
    project: Project,
    info: BackupInfo,
    *,
    only: Iterable[str] | None = None,
    allow_other_env: bool = False,
    out: Output | None = None,
    backend: Backend | None = None,
) -> None:
    """Everything a restore checks before it asks or changes anything: every checksum (exit 6,
    naming the artefact), the environment (exit 7 unless ``allow_other_env``), the ``only``
    selection, and free space on the engine's data root (exit 7) for the volumes' set-aside
    copies and the databases' ``__restoring`` copies beside the current content.

    The checksums (reading every artefact, the long part) are computed in a thread while the
    space is measured (one throw-away ``du`` container, ``docker info``, a ``psql`` per
    database); a corrupted backup is reported first."""
    failed: list[BaseException] = []

    def hash_all() -> None:
        try:
            check_checksums(info, out)
        except BaseException as exc:  # re-raised in the caller's thread
            failed.append(exc)

    hasher = threading.Thread(target=hash_all, name="checksums", daemon=True)
    hasher.start()
    try:
        _check_restore_space(
            project, info, _selected(info, only, project), backend or ComposeBackend()
        )
    except BaseException:
        hasher.join()
        if failed:
            raise failed[0] from None
        raise
    hasher.join()
    if failed:
        raise failed[0]
    if info.environment != project.env.name and not allow_other_env:
        raise RefusedError(
            f"Backup {info.id} was taken in {info.environment!r}, not {project.env.name!r}; "
            "pass --allow-other-env to restore it here anyway."
        )


def _check_restore_space(
    project: Project, info: BackupInfo, arts: Sequence[Any], backend: Backend
) -> None:
    """The engine's data root must hold, beside what is there: each restored volume's content
    (its old content is copied aside until the end) and a copy of each restored database (it
    is loaded beside the current one)."""
    archives = [a for a in arts if a.kind == KIND_VOLUME]
    dumps = [a for a in arts if a.kind == KIND_DUMP]
    if not archives and not dumps:
        return
    keys = {
        a.source: project.stack.volumes[a.source]
        for a in archives
        if a.source in project.stack.volumes
    }
    current = volume_sizes(project, keys) if keys else {}
    needed = sum(current.values()) + sum(a.raw_size for a in archives)
    by_service = {d.service: d for d in databases(project)}
    # The databases are counted where they run: on swarm, in the stack's tasks.
    running = set(running_services(project, backend)) if dumps else set()
    for art in dumps:
        db = by_service.get(art.source)
        if db is not None and db.service in running:
            needed += database_size(project, db, backend)
    docker_root = Path(Engine().info().docker_root_dir)
    check_free_space(docker_root, needed, what="restore")


def restore_backup(
    project: Project,
    info: BackupInfo,
    *,
    only: Iterable[str] | None = None,
    allow_other_env: bool = False,
    safety_backup: bool = True,
    dest: Path | None = None,
    out: Output | None = None,
    checked: bool = False,
    backend: Backend | None = None,
    inspect_restored: Callable[[], None] | None = None,
) -> RestoreResult:
    """Restore ``info`` into ``project`` (the caller has confirmed; ``checked``: and has run
    :func:`check_restorable`). See the module docstring.

    ``inspect_restored`` is called once everything is restored, while the services that mount
    a restored volume are still stopped (``backup.drill`` checksums the volumes there, before
    a service writes to them again)."""
    out = out or Output()
    backend = backend or ComposeBackend()
    started = time.monotonic()
    env_name = project.env.name
    recover_interrupted(project, out, backend)
    if not checked:
        check_restorable(
            project, info, only=only, allow_other_env=allow_other_env, out=out, backend=backend
        )
    arts = _selected(info, only, project)
    dbs = {d.service: d for d in databases(project)}
    dumps = [a for a in arts if a.kind == KIND_DUMP]
    archives = [a for a in arts if a.kind == KIND_VOLUME]
    for art in dumps:
        if art.source not in dbs:
            raise LakehouseError(
                f"Backup {info.id} holds a dump of {art.source!r}, which is not a database "
                f"service of the {env_name!r} stack; leave it out with --only."
            )
    result = RestoreResult(backup=info.id, environment=env_name, safety_backup=None)
    if safety_backup and has_data(project):
        only_sel = sorted({a.source for a in arts})
        out.info("Taking a safety backup of the current state first")
        manifest = create_backup(
            project, dest=dest, only=only_sel, tag="pre-restore", out=out, backend=backend
        )
        result.safety_backup = manifest.id

    users = volume_users(project)
    stop: set[str] = set()
    for art in archives:
        stop.update(users.get(art.source, ()))
    stop |= _clients(project, [a.source for a in dumps])
    stop -= set(a.source for a in dumps)  # a database must run to be restored
    asides: dict[str, str] = {}
    try:
        with (
            _Progress(out) as progress,
            services_stopped(project, stop, reason="restore", backend=backend) as stopped,
        ):
            result.services = list(stopped)
            for art in archives:
                advance = progress.start(f"restore {art.source}", art.size)
                volume = restore_volume(project, info, art, advance, asides, backend)
                result.restored.append({"artefact": art.name, "target": volume, "status": "ok"})
            for art in dumps:
                advance = progress.start(f"restore {art.source}", art.size)
                restore_database(project, dbs[art.source], info, art, advance, backend)
                result.restored.append(
                    {
                        "artefact": art.name,
                        "target": f"{art.source}/{dbs[art.source].database}",
                        "status": "ok",
                    }
                )
            if inspect_restored is not None:
                inspect_restored()
        # What was stopped (and started again) and the databases: `stop` also names services
        # of the configuration that are not running (an inactive Spark worker), which a
        # snapshot would refuse as unknown.
        backend.wait_healthy(
            project,
            sorted(set(result.services) | {a.source for a in dumps}),
            timeout=HEALTH_TIMEOUT_S,
            what="the restore",
            confirmed=stopped.confirmed,
        )
    except BaseException as exc:
        _roll_back(project, asides, out, backend)
        if isinstance(exc, (Exception, KeyboardInterrupt)):
            reason = exc.message if isinstance(exc, LakehouseError) else type(exc).__name__
            emit_event(
                Event(
                    EventKind.RESTORE_FAILED,
                    env_name,
                    f"Restore of {env_name} from {info.id} failed: {reason}",
                ),
                project.env,
            )
        raise
    for aside in asides.values():
        try:
            engine_volumes.remove([aside])
        except EngineError as exc:
            out.warn(f"could not remove the set-aside volume {aside}: {exc.message}")
    result.duration_seconds = time.monotonic() - started
    emit_event(
        Event(
            EventKind.RESTORE_SUCCEEDED,
            env_name,
            f"{env_name} restored from backup {info.id}",
            details={"backup": info.id, "safety_backup": result.safety_backup},
        ),
        project.env,
    )
    return result


def _roll_back(project: Project, asides: dict[str, str], out: Output, backend: Backend) -> None:
    """Put each volume's pre-restore content back (services are stopped around it)."""
    if not asides:
        return
    users = volume_users(project)
    by_volume = {v: k for k, v in project.stack.volumes.items()}
    stop = {s for v in asides for s in users.get(by_volume.get(v, ""), ())}
    try:
        with services_stopped(project, stop, reason="restore rollback", backend=backend):
            for volume, aside in asides.items():
                image = tool_image(project, by_volume.get(volume))
                engine_volumes.clear(image, volume)
                engine_volumes.copy(
                    image, aside, volume, scrub=project.env.scrub, what=f"copy of volume {aside}"
                )
                engine_volumes.remove([aside])
                out.warn(f"volume {volume} was put back as it was before the restore")
    except LakehouseError as exc:
        kept = ", ".join(asides.values())
        out.error(f"rolling back failed ({exc.message}); the previous content is kept in {kept}")
