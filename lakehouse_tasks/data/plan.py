"""The stack seen as data to back up: its databases, the users of each volume, the
selection (``--only``), and what the engine holds of it (volumes, their sizes, an image with
tar)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine import commands as engine_commands
from ..engine import volumes as engine_volumes
from ..engine.client import Engine
from ..errors import LakehouseError
from ..parsing import parse_names

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..project import Project


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
    #: databases whose data volume is archived as it rests instead of dumped (backup.at_rest)
    resting: tuple[str, ...] = ()


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
    non-database volume), a service name (its dump, or the volumes it mounts) or a volume key
    (a database's data volume names that database). Without ``only``: everything.
    """
    dbs = databases(project)
    users = volume_users(project)
    db_volumes = {v for d in dbs for v in d.volumes}
    archivable = {k: v for k, v in project.stack.volumes.items() if k not in db_volumes}
    selectors = list(parse_names(only))
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
        elif sel in db_volumes:  # a restore's safety backup names what the backup holds
            chosen_dbs.update({d.service: d for d in dbs if sel in d.volumes})
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
