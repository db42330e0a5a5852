"""What a restore checks before it asks or changes anything: the ``--only`` selection, every
checksum, the environment, and free space on the engine's data root."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.compose import ComposeBackend
from ..engine.client import Engine
from ..errors import LakehouseError, RefusedError
from ..notices import Notices
from ..parsing import parse_names
from .manifest import KIND_DUMP, KIND_VOLUME, BackupInfo, check_checksums
from .plan import (
    database_size,
    databases,
    running_services,
    volume_sizes,
    volume_users,
)
from .store import check_free_space

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..project import Project


def selected_artefacts(info: BackupInfo, only: Iterable[str] | None, project: Project) -> list[Any]:
    selectors = list(parse_names(only))
    arts = [a for a in info.manifest.artefacts if a.kind in (KIND_DUMP, KIND_VOLUME)]
    if not selectors:
        return arts
    users = volume_users(project)
    db_volumes = {v for d in databases(project) for v in d.volumes}
    chosen = []
    for art in arts:
        for sel in selectors:
            if (
                (
                    sel in ("db", "dbs", "databases")
                    and (art.kind == KIND_DUMP or art.source in db_volumes)
                )
                or (sel == "volumes" and art.kind == KIND_VOLUME and art.source not in db_volumes)
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


def check_restorable(
    project: Project,
    info: BackupInfo,
    *,
    only: Iterable[str] | None = None,
    allow_other_env: bool = False,
    out: Notices | None = None,
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
            project, info, selected_artefacts(info, only, project), backend or ComposeBackend()
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
