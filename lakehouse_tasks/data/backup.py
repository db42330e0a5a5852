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
cleanly across PostgreSQL minor versions and are consistent without stopping anything. A
database that is not running (the stack after a teardown that kept its volumes) cannot be
dumped; its data volume is archived as it rests instead (:func:`at_rest`).

A backup is assembled in ``<dest>/.tmp-<id>/`` and renamed into place only once complete, so
an interrupted backup never looks like a finished one. Services stopped for a consistent
archive are recorded in a state file first; :func:`recover_interrupted` restarts them if the
backup was killed before it could.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__, compress
from ..backends.base import unsettled_phrase
from ..backends.compose import ComposeBackend
from ..engine import commands as engine_commands
from ..engine import volumes as engine_volumes
from ..engine.client import Engine
from ..errors import LakehouseError
from ..events import Event, EventKind
from ..hooks.emit import emit_event
from ..hooks.manager import get_plugin_manager
from ..notices import Notices, PlainNotices
from ..paths import git_commit
from ..units import human_bytes
from .maintenance import recover_interrupted, services_stopped
from .manifest import (
    KIND_DUMP,
    KIND_PLUGIN,
    KIND_VOLUME,
    MANIFEST,
    Artefact,
    BackupManifest,
    sha256_file,
    write_json,
)
from .plan import (
    BackupPlan,
    Database,
    database_size,
    plan,
    running_services,
    tool_image,
    volume_sizes,
)
from .store import check_free_space, check_tag, default_dest, new_workdir

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..project import Project

#: gzip level of volume archives: speed over ratio (lakehouse data is mostly parquet, which
#: is already compressed, so higher levels cost CPU time and gain little).
GZIP_LEVEL = 1
#: pg_dump's zlib level in the custom-format dumps: 1 dumps about twice as fast as its default
#: (6) for a few percent more bytes (docs/PERFORMANCE.md); pg_restore reads any level.
DUMP_COMPRESSION = 1


TEST_DELAY_ENV = "LAKEHOUSE_BACKUP_TEST_DELAY"


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


def _resting_line(group: Sequence[Database], how: str, named: Mapping[str, str]) -> str:
    """``<services> is|are <how> its|their data volume(s) (<keys>) as it rests|they rest
    instead of dumping``, naming the ``named`` volumes of ``group``."""
    many = len(group) > 1
    keys = sorted(v for d in group for v in d.volumes if v in named)
    return (
        f"{', '.join(d.service for d in group)} {'are' if many else 'is'} {how} "
        f"{'their data volumes' if many else 'its data volume'} ({', '.join(keys)}) as "
        f"{'they rest' if many else 'it rests'} instead of dumping"
    )


def at_rest(project: Project, selection: BackupPlan, backend: Backend, out: Notices) -> BackupPlan:
    """The selection with each database that is not running archived instead of dumped.

    A stopped PostgreSQL server's data volume is consistent as it rests (nothing writes to
    it; a server that crashed replays its own WAL from the same volume on start), and is
    the only copy that can be taken without starting it: the stack after ``teardown`` (its
    volumes kept), before the deploy that brings it back and backs it up first. A database
    that is not running and has no named volume cannot be backed up (exit 2). One the engine
    is restarting (a crash loop) is not up, so it counts as not running: the backup's stop
    of its volume's users stops it first (:func:`~.maintenance.services_stopped`)."""
    if not selection.databases:
        return selection
    restarting = backend.restarting_services(project)
    running = set(running_services(project, backend)) - set(restarting)
    down = [d for d in selection.databases if d.service not in running]
    if not down:
        return selection
    lost = [d.service for d in down if not any(v in project.stack.volumes for v in d.volumes)]
    if lost:
        raise LakehouseError(
            f"Database service{'s' if len(lost) > 1 else ''} {', '.join(lost)} of "
            f"{project.env.name!r} {'are' if len(lost) > 1 else 'is'} not running and "
            f"{'have' if len(lost) > 1 else 'has'} no named volume, so it can be backed up only "
            "while it runs; deploy the stack first, or back up volumes only with --only volumes."
        )
    cold = {
        v: project.stack.volumes[v] for d in down for v in d.volumes if v in project.stack.volumes
    }
    stopped = [d for d in down if d.service not in restarting]
    looping = [d for d in down if d.service in restarting]
    if stopped:
        out.info(_resting_line(stopped, "not running: archiving", cold))
    if looping:
        state = unsettled_phrase(restarting[d.service] for d in looping)
        out.info(_resting_line(looping, f"{state}: stopping and archiving", cold))
    return replace(
        selection,
        databases=tuple(d for d in selection.databases if d.service in running),
        volumes={**selection.volumes, **cold},
        resting=tuple(d.service for d in down),
    )


def create_backup(
    project: Project,
    *,
    dest: Path | str | None = None,
    only: Iterable[str] | None = None,
    tag: str | None = None,
    online: bool = False,
    out: Notices | None = None,
    backend: Backend | None = None,
) -> BackupManifest:
    """Back up ``project`` into ``dest`` and return the manifest of the complete backup.

    ``backend``: where the stack runs (default compose); a swarm stack of the same name is
    dumped through ``docker exec`` into a running task, its services stopped by scaling them
    to 0 and back.

    Refuses (exit 7) before writing anything when the destination lacks space; fails with the
    failing command's error otherwise. Emits BACKUP_SUCCEEDED or BACKUP_FAILED.
    """
    out = out or PlainNotices()
    tag = check_tag(tag)
    started = time.monotonic()
    backend = backend or ComposeBackend()
    recover_interrupted(project, out, backend)
    dest_path = Path(dest).expanduser().absolute() if dest else default_dest(project.env)
    selection = plan(project, only)
    env_name = project.env.name
    workdir: Path | None = None
    try:
        selection = at_rest(project, selection, backend, out)
        vol_sizes, db_sizes = estimate(project, selection, backend)
        check_free_space(dest_path, sum(vol_sizes.values()) + sum(db_sizes.values()))
        ident, workdir = new_workdir(dest_path, env_name, tag)
        out.info(f"Backing up {env_name!r} into {dest_path / ident}")
        artefacts: list[Artefact] = []
        # Side by side (docs/BACKUP.md): every database dump starts at once (each is consistent
        # by itself, taken while its database runs, as before), and so does the stop of the
        # volumes' users; once they are stopped every volume is archived at once. The users
        # are down only while the archives run, not while the dumps do.
        with (
            out.transfers() as progress,
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
                    # A database archived as it rests is stopped even --online: one the engine
                    # keeps restarting is stopped here (a stopped one is left as it is).
                    stop: set[str] = set(selection.resting)
                    if not online:
                        for key in selection.volumes:
                            stop.update(selection.users.get(key, ()))
                    else:
                        out.warn(
                            "--online: volumes are archived while their services write to "
                            "them; the copy may be inconsistent (fuzzy)."
                        )
                    with services_stopped(project, stop, reason="backup", backend=backend, out=out):
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
        write_json(workdir / MANIFEST, manifest.to_dict())
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
