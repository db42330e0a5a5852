"""Where backups live: the destination, ids and tags, listing and finding backups (local or
fetched by a plugin), free space, and the work directory a backup is assembled in."""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LakehouseError, RefusedError
from ..hooks.manager import get_plugin_manager
from ..notices import Notices
from ..units import human_bytes
from .manifest import (
    MANIFEST,
    TMP_PREFIX,
    VERIFIED,
    BackupInfo,
    BackupManifest,
    VerifyRecord,
    check_checksums,
)

if TYPE_CHECKING:
    from ..environment import Environment

SPACE_MARGIN_BYTES = 64 * 1024 * 1024


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


def pid_alive(pid: int) -> bool:
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
            if not (pid and pid != os.getpid() and pid_alive(pid)):
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
    env: Environment, dest: Path, ident: str, out: Notices | None = None
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
        from ..environment import load_environment

        dest = default_dest(load_environment(env_name, root=root, strict=False))
    backups, _ = list_backups(Path(dest), env_name)
    return backups[0] if backups else None


def new_workdir(dest: Path, env_name: str, tag: str | None) -> tuple[str, Path]:
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
