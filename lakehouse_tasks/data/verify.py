"""Verify a backup: every checksum, and with ``--deep`` every archive read to its end and every
dump restored into a throw-away PostgreSQL container of the stack's own image. The outcome is
recorded in the backup's ``verified.json``."""

from __future__ import annotations

import datetime as _dt
import secrets
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compress import open_tar_stream
from ..engine import commands as engine_commands
from ..engine.client import Engine
from ..errors import EngineError, ExitCode, LakehouseError
from ..notices import Notices, PlainNotices
from .manifest import (
    KIND_DUMP,
    KIND_VOLUME,
    VERIFIED,
    BackupInfo,
    VerifyRecord,
    VerifyResult,
    check_checksums,
    write_json,
)
from .plan import databases

if TYPE_CHECKING:
    from ..project import Project


def verify_backup(
    info: BackupInfo,
    *,
    deep: bool = False,
    project: Project | None = None,
    out: Notices | None = None,
) -> VerifyResult:
    """Check a backup's checksums (and with ``deep`` that every dump restores and every
    archive reads). Records the outcome in ``verified.json``; raises exit 6 on a mismatch."""
    out = out or PlainNotices()
    result = VerifyResult(backup=info.id, deep=deep)
    try:
        result.artefacts = check_checksums(info, out)
        if deep:
            deep_check(info, project, out, result.artefacts)
    except LakehouseError as exc:
        write_json(
            info.path / VERIFIED,
            VerifyRecord(_dt.datetime.now(_dt.UTC), deep, False, exc.message).to_dict(),
        )
        raise
    write_json(info.path / VERIFIED, VerifyRecord(_dt.datetime.now(_dt.UTC), deep, True).to_dict())
    return result


def _postgres_image(info: BackupInfo, source: str, project: Project | None) -> str:
    candidates = []
    recorded = (info.manifest.images.get(source) or {}).get("image")
    if recorded:
        candidates.append(str(recorded))
    if project is not None:
        candidates.extend(d.image for d in databases(project))
    present = Engine().image_ids(candidates)
    for image in dict.fromkeys(candidates):
        if present.get(image):
            return image
    raise LakehouseError(
        f"No PostgreSQL image to test-restore {source}'s dump is present locally; deploy the "
        "stack once so its images exist, then verify again."
    )


def _wait_pg_ready(cid: str, user: str, db: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            engine_commands.exec_output(cid, "pg_isready", "-h", "127.0.0.1", "-U", user, "-d", db)
            return
        except EngineError:
            if time.monotonic() > deadline:
                raise LakehouseError(
                    "The throw-away PostgreSQL container did not become ready in "
                    f"{int(timeout)}s; check `docker logs {cid[:12]}`.",
                    ExitCode.INTEGRITY_FAILED,
                ) from None
            time.sleep(0.5)


def _count_tables(cid: str, user: str, db: str) -> int:
    out = engine_commands.exec_output(
        cid, "psql", "-U", user, "-d", db, "-tAc",
        "SELECT count(*) FROM pg_catalog.pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )  # fmt: skip
    return int(out.strip().splitlines()[-1])


def _count_entries(path: Path, compression: str) -> int:
    """Read a volume archive to its end; the number of its entries."""
    with open_tar_stream(path, compression) as archive:
        return sum(1 for _ in archive)


def deep_check(
    info: BackupInfo, project: Project | None, out: Notices, rows: list[dict[str, Any]]
) -> None:
    """Read every archive to its end and restore every dump into a throw-away PostgreSQL
    container of the stack's own image; raise exit 6 naming the artefact that fails."""
    by_name = {r["artefact"]: r for r in rows}
    for art in info.manifest.artefacts:
        path = info.path / art.name
        if art.kind == KIND_VOLUME:
            try:
                entries = _count_entries(path, art.compression)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise LakehouseError(
                    f"Backup {info.id} is corrupted: archive {art.name} cannot be read ({exc}).",
                    ExitCode.INTEGRITY_FAILED,
                ) from None
            by_name[art.name]["deep"] = f"reads ({entries} entries)"
        elif art.kind == KIND_DUMP:
            image = _postgres_image(info, art.source, project)
            user, db = "verify", "verify"
            out.info(f"Test-restoring {art.name} into a throw-away {image} container")
            cid = engine_commands.run_detached(
                image,
                labels={"io.lakehouse.purpose": "backup-verify"},
                environment={
                    "POSTGRES_PASSWORD": secrets.token_hex(16),
                    "POSTGRES_USER": user,
                    "POSTGRES_DB": db,
                },
            )
            try:
                _wait_pg_ready(cid, user, db)
                try:
                    engine_commands.exec_from_file(
                        cid,
                        ["pg_restore", "-U", user, "-d", db, "--no-owner", "--no-privileges",
                         "--exit-on-error"],
                        path,
                        what=f"pg_restore of {art.name}",
                    )  # fmt: skip
                except EngineError as exc:
                    raise LakehouseError(
                        f"Backup {info.id}: dump {art.name} does not restore: {exc.message}",
                        ExitCode.INTEGRITY_FAILED,
                    ) from None
                tables = _count_tables(cid, user, db)
            finally:
                try:
                    engine_commands.remove([cid])
                except EngineError:
                    out.warn(f"could not remove the throw-away container {cid[:12]}")
            by_name[art.name]["deep"] = f"restores ({tables} tables)"


__all__ = ["deep_check", "verify_backup"]
