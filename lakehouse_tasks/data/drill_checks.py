"""What a drill compares: each database's row counts against its dump, each volume's file
checksums against its archive (read from the verified backup itself)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends.compose import ComposeBackend
from ..compress import open_tar_stream
from ..engine import commands as engine_commands
from ..engine import volumes as engine_volumes
from ..errors import EngineError, ExitCode, LakehouseError
from .manifest import (
    KIND_DUMP,
    KIND_VOLUME,
    BackupInfo,
)
from .plan import tool_image

if TYPE_CHECKING:
    from ..project import Project
    from .drill import DrillResult

# ---- expected and actual contents -----------------------------------------------------------
_COPY = re.compile(r"^COPY (.+?)(?: \(.*\))? FROM stdin;$")


def _unquote(name: str) -> str:
    return ".".join(part.strip('"') for part in name.split("."))


def dump_row_counts(container: str, dump: Path) -> dict[str, int]:
    """Rows per table (``schema.table``) in a ``pg_dump -Fc`` file: its data section as SQL
    (``pg_restore --data-only -f -``, streamed through the database's container), counting
    the lines of each ``COPY`` block (a row is one line: newlines in values are escaped)."""
    counts: dict[str, int] = {}
    table: str | None = None
    try:
        for line in engine_commands.exec_lines(
            container, ["pg_restore", "--data-only", "-f", "-"], stdin=dump, what="pg_restore"
        ):
            if table is not None:
                if line == "\\.":
                    table = None
                else:
                    counts[table] += 1
                continue
            match = _COPY.match(line)
            if match:
                table = _unquote(match.group(1))
                counts.setdefault(table, 0)
    except EngineError as exc:
        raise LakehouseError(
            f"pg_restore could not read the dump {dump.name} ({exc.stderr.strip()[:200]}); "
            "the backup is damaged, use another one.",
            ExitCode.INTEGRITY_FAILED,
        ) from None
    return counts


COUNT_SQL = (
    "SELECT n.nspname || '.' || c.relname, (xpath('/row/c/text()', query_to_xml("
    "format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]"
    "::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1"
)


def table_row_counts(container: str, user: str, database: str) -> dict[str, int]:
    out = engine_commands.exec_output(
        container, "psql", "-U", user, "-d", database, "-tAF", "\t", "-c", COUNT_SQL
    )
    counts: dict[str, int] = {}
    for line in out.splitlines():
        name, sep, value = line.partition("\t")
        if sep:
            counts[name.strip()] = int(value.strip() or 0)
    return counts


def archive_checksums(archive: Path, compression: str = "gzip") -> dict[str, str]:
    """sha256 of every regular file in a volume archive, by relative path (gzip, zstd or
    plain tar, as the manifest names it)."""
    sums: dict[str, str] = {}
    with open_tar_stream(archive, compression) as tar:
        for member in tar:
            if not member.isfile():
                continue
            fh = tar.extractfile(member)
            if fh is None:
                continue
            digest = hashlib.sha256()
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
            sums[member.name.removeprefix("./")] = digest.hexdigest()
    return sums


def volume_checksums(project: Project, key: str, volume: str) -> dict[str, str]:
    """sha256 of every regular file in a volume, by relative path (one throw-away container
    of the stack's own image)."""
    return engine_volumes.file_checksums(tool_image(project, key), volume)


def compare_databases(copy: Project, info: BackupInfo, result: DrillResult) -> list[str]:
    problems = []
    for art in info.manifest.artefacts:
        if art.kind != KIND_DUMP:
            continue
        cid = ComposeBackend().exec_target(copy, art.source)
        expected = dump_row_counts(cid, info.path / art.name)
        actual = table_row_counts(cid, art.user, art.database)
        wrong = sorted(
            t for t in set(expected) | set(actual) if expected.get(t) != actual.get(t, None)
        )
        result.databases.append(
            {
                "service": art.source,
                "database": art.database,
                "tables": len(expected),
                "rows": sum(expected.values()),
                "expected": expected,
                "actual": actual,
                "ok": not wrong,
            }
        )
        if wrong:
            t = wrong[0]
            problems.append(
                f"{art.source}: table {t} holds {actual.get(t, 'no')} rows, the dump "
                f"{expected.get(t, 'none')}"
            )
    return problems


def compare_volumes(copy: Project, info: BackupInfo, result: DrillResult) -> list[str]:
    problems = []
    for art in info.manifest.artefacts:
        if art.kind != KIND_VOLUME or art.source not in copy.stack.volumes:
            continue
        expected = archive_checksums(info.path / art.name, art.compression)
        actual = volume_checksums(copy, art.source, copy.stack.volumes[art.source])
        wrong = sorted(p for p in set(expected) | set(actual) if expected.get(p) != actual.get(p))
        result.volumes.append(
            {
                "volume": art.source,
                "files": len(expected),
                "mismatched": wrong[:20],
                "ok": not wrong,
            }
        )
        if wrong:
            problems.append(f"volume {art.source}: file {wrong[0]} differs from the archive")
    return problems
