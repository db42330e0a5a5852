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

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.compose import ComposeBackend
from ..compress import decompress_argv
from ..engine import commands as engine_commands
from ..engine import volumes as engine_volumes
from ..errors import EngineError, ExitCode, LakehouseError
from ..events import Event, EventKind
from ..hooks.emit import emit_event
from ..notices import Notices, PlainNotices
from .backup import create_backup
from .maintenance import recover_interrupted, services_stopped
from .manifest import KIND_DUMP, KIND_VOLUME, BackupInfo
from .plan import (
    Database,
    databases,
    existing_volumes,
    has_data,
    tool_image,
    volume_users,
)
from .restorable import check_restorable, selected_artefacts

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..project import Project

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


# ---- restore --------------------------------------------------------------------------------
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


def restore_backup(
    project: Project,
    info: BackupInfo,
    *,
    only: Iterable[str] | None = None,
    allow_other_env: bool = False,
    safety_backup: bool = True,
    dest: Path | None = None,
    out: Notices | None = None,
    checked: bool = False,
    backend: Backend | None = None,
    inspect_restored: Callable[[], None] | None = None,
) -> RestoreResult:
    """Restore ``info`` into ``project`` (the caller has confirmed; ``checked``: and has run
    :func:`check_restorable`). See the module docstring.

    ``inspect_restored`` is called once everything is restored, while the services that mount
    a restored volume are still stopped (``backup.drill`` checksums the volumes there, before
    a service writes to them again)."""
    out = out or PlainNotices()
    backend = backend or ComposeBackend()
    started = time.monotonic()
    env_name = project.env.name
    recover_interrupted(project, out, backend)
    if not checked:
        check_restorable(
            project, info, only=only, allow_other_env=allow_other_env, out=out, backend=backend
        )
    arts = selected_artefacts(info, only, project)
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
    # A database archived as it rested (not running at backup time) comes back as its data
    # volume: the server stops with the volume's other users, and its clients with it.
    restored_volumes = {a.source for a in archives}
    stop |= _clients(project, [s for s, d in dbs.items() if restored_volumes & set(d.volumes)])
    stop -= set(a.source for a in dumps)  # a database must run to be restored
    asides: dict[str, str] = {}
    try:
        with (
            out.transfers() as progress,
            services_stopped(project, stop, reason="restore", backend=backend, out=out) as stopped,
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
        # snapshot would refuse as unknown. One that was in a crash loop before is not waited
        # for: its loop may have nothing to do with the data (the warning named it).
        backend.wait_healthy(
            project,
            sorted((set(result.services) - stopped.unsettled) | {a.source for a in dumps}),
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


def _roll_back(project: Project, asides: dict[str, str], out: Notices, backend: Backend) -> None:
    """Put each volume's pre-restore content back (services are stopped around it)."""
    if not asides:
        return
    users = volume_users(project)
    by_volume = {v: k for k, v in project.stack.volumes.items()}
    stop = {s for v in asides for s in users.get(by_volume.get(v, ""), ())}
    try:
        with services_stopped(project, stop, reason="restore rollback", backend=backend, out=out):
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
