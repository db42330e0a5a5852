"""Restore drills: prove a backup restores, in a throw-away copy of the stack.

``invoke backup.drill --env E [--backup ID]``:

1. takes the environment's drill lock (a second drill of the same environment is refused,
   exit 7) and removes what an earlier drill killed outright left behind (its record in the
   state directory names the copy's project);
2. finds the backup (the newest one, or ``--backup``), on the host or fetched back from an
   off-site copy (``lakehouse_fetch_backup``) into the drill's own work directory, and
   recomputes every checksum against the manifest (exit 6) before anything starts;
3. starts a copy of the stack as its own compose project ``<project>-drill``: its own
   containers, networks and volumes, every published port removed (``ports: !reset []``),
   so nothing of the live environment is touched or reachable;
4. restores the backup into the copy (no safety backup: the copy is empty) and measures it,
   waits until every service of the copy is healthy;
5. checks that every database holds, table by table, the row count of its dump (counted from
   the verified dump itself with ``pg_restore --data-only``) and every volume, file by file,
   the sha256 of the archived file (read from the verified archive);
6. runs the smoke test against the copy (the hops of its own services);
7. writes the evidence (JSON, no secrets) to ``<state dir>/drills/``, tears the copy down,
   checks nothing of it is left, and emits ``backup.drill_succeeded`` / ``backup.drill_failed``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.compose import ComposeBackend
from ..checks import Check, passed, warned
from ..errors import EngineError, ExitCode, LakehouseError
from ..events import Event, EventKind
from ..hooks.emit import emit_event
from ..notices import Notices, PlainNotices
from ..paths import state_dir, write_atomic
from ..smoke.model import SmokeReport
from ..smoke.runner import run_smoke
from .drill_checks import compare_databases, compare_volumes
from .drill_copy import (
    clean_interrupted,
    copy_name,
    copy_project,
    drill_dir,
    drill_lock,
    last_path,
    leftovers_of,
    record_path,
    remove_copy,
)
from .manifest import (
    MANIFEST,
    BackupInfo,
    BackupManifest,
    VerifyRecord,
    check_checksums,
)
from .store import default_dest, find_backup, list_backups

if TYPE_CHECKING:
    from ..environment import Environment
    from ..project import Project

HEALTH_TIMEOUT_S = 600.0


# ---- the drill ------------------------------------------------------------------------------
@dataclass
class DrillResult:
    environment: str
    backup: str
    copy_project: str
    source: str = "local"  # local | off-site
    ok: bool = False
    problem: str = ""
    started: str = ""
    restore_seconds: float = 0.0
    healthy_seconds: float = 0.0
    total_seconds: float = 0.0
    databases: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    smoke: str = "not installed"
    smoke_counts: dict[str, int] = field(default_factory=dict)
    left_behind: dict[str, list[str]] = field(default_factory=dict)
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "backup": self.backup,
            "copy_project": self.copy_project,
            "source": self.source,
            "ok": self.ok,
            "problem": self.problem,
            "started": self.started,
            "restore_seconds": round(self.restore_seconds, 3),
            "healthy_seconds": round(self.healthy_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "databases": self.databases,
            "volumes": self.volumes,
            "smoke": self.smoke,
            "smoke_counts": self.smoke_counts,
            "left_behind": self.left_behind,
            "evidence": self.evidence,
        }


def _plugins() -> Any:
    from ..hooks.manager import get_plugin_manager

    return get_plugin_manager()


def choose_backup(env: Environment, backup_id: str | None, work: Path) -> tuple[BackupInfo, str]:
    """The backup to drill (the newest when none is named): from the host, else fetched from
    an off-site copy into ``work``; its checksums recomputed against the manifest."""
    dest = default_dest(env)
    pm = _plugins()
    if not backup_id:
        local, _ = list_backups(dest, env.name)
        if local:
            backup_id = local[0].id
        else:
            copies = sorted(pm.backup_copies(env=env), key=lambda c: c.time) if pm else []
            if not copies:
                raise LakehouseError(
                    f"{env.name} has no backup to drill, on this host or off-site; take one "
                    "with `invoke backup` first."
                )
            backup_id = copies[-1].backup_id
    source = "local"
    try:
        info = find_backup(dest, backup_id)
    except LakehouseError:
        fetched = pm.fetch_backup(env=env, backup_id=backup_id, dest=work) if pm else None
        if fetched is None:
            raise
        info = BackupInfo(
            fetched,
            BackupManifest.load(fetched / MANIFEST),
            VerifyRecord.load(fetched / "verified.json"),
        )
        source = "off-site"
    check_checksums(info)
    return info, source


def _smoke(
    copy: Project, result: DrillResult, run: Callable[..., SmokeReport] = run_smoke
) -> list[str]:
    """Run the smoke test against the copy; record its summary and return its failures.

    Only the hops whose services are part of the copy's stack run; they reach its unpublished
    ports at the containers' addresses (smoke.runner.run_smoke, ``within_stack``)."""
    report = run(copy, within_stack=True)
    result.smoke = report.summary()
    result.smoke_counts = report.counts()
    return [f"smoke hop {hop.name} failed: {hop.cause}" for hop in report.failed] + [
        f"smoke clean-up incomplete: {c.what}" for c in report.cleanup_failed
    ]


def run_drill(
    project: Project,
    *,
    backup_id: str | None = None,
    out: Notices | None = None,
    timeout: float = HEALTH_TIMEOUT_S,
) -> DrillResult:
    """Run one restore drill of ``project``'s environment (see the module docstring)."""
    from .restore import restore_backup

    # The copy is a compose project on this engine, whatever the environment's own target.
    backend = ComposeBackend()
    out = out or PlainNotices()
    env = project.env
    started = time.monotonic()
    result = DrillResult(env.name, backup_id or "", copy_name(env))
    result.started = _dt.datetime.now(_dt.UTC).isoformat()
    with drill_lock(env):
        clean_interrupted(env, out)
        work = state_dir(Path(env.root)) / "drill-work" / f"{env.name}-{os.getpid()}"
        work.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "project": result.copy_project, "workdir": str(work)}
        record_path(env).write_text(json.dumps(record) + "\n")
        error: LakehouseError | None = None
        try:
            info, result.source = choose_backup(env, backup_id, work)
            result.backup = info.id
            copy = copy_project(project, work)
            out.info(f"Drill: starting an isolated copy {copy.compose.project_name} (no ports)")
            copy.compose.up_detached()
            backend.wait_healthy(
                copy, sorted(copy.stack.services), timeout=timeout, what="starting the copy"
            )
            t0 = time.monotonic()
            out.info(f"Drill: restoring {info.id} into the copy")
            volume_problems: list[str] = []
            restore_backup(
                copy,
                info,
                safety_backup=False,
                allow_other_env=True,
                dest=work,
                out=out,
                backend=backend,
                # the volumes as restored, before the copy's services write to them again
                inspect_restored=lambda: volume_problems.extend(
                    compare_volumes(copy, info, result)
                ),
            )
            result.restore_seconds = time.monotonic() - t0
            backend.wait_healthy(
                copy, sorted(copy.stack.services), timeout=timeout, what="the drill's restore"
            )
            result.healthy_seconds = time.monotonic() - t0
            problems = volume_problems + compare_databases(copy, info, result)
            if problems:
                raise LakehouseError(
                    f"The drill of backup {info.id} failed: {problems[0]}; do not rely on this "
                    "backup, take a new one and drill it.",
                    ExitCode.INTEGRITY_FAILED,
                )
            smoke_problems = _smoke(copy, result)
            if smoke_problems:
                raise LakehouseError(
                    f"The drill of backup {info.id} failed: {smoke_problems[0]}; the restored "
                    "copy does not work end to end, so do not rely on this backup.",
                    ExitCode.INTEGRITY_FAILED,
                )
            result.ok = True
        except LakehouseError as exc:
            error = exc
            result.problem = exc.message
        finally:
            try:
                remove_copy(result.copy_project)
                result.left_behind = {
                    k: v for k, v in leftovers_of(result.copy_project).items() if v
                }
            except EngineError as exc:
                result.left_behind = {"error": [exc.message]}
            shutil.rmtree(work, ignore_errors=True)
            record_path(env).unlink(missing_ok=True)
        result.total_seconds = time.monotonic() - started
        if result.left_behind and result.ok:
            result.ok = False
            result.problem = f"the copy {result.copy_project} could not be removed completely"
        _write_evidence(env, result)
    kind = EventKind.DRILL_SUCCEEDED if result.ok else EventKind.DRILL_FAILED
    message = (
        f"Restore drill of {result.backup or '?'} passed in {result.total_seconds:.0f}s"
        if result.ok
        else f"Restore drill of {result.backup or '?'} failed: {result.problem}"
    )
    emit_event(
        Event(
            kind, env.name, message, details={"backup": result.backup, "evidence": result.evidence}
        ),
        env,
    )
    if error is not None:
        raise error
    if not result.ok:
        raise LakehouseError(message + ".", ExitCode.DEPLOY_FAILED)
    return result


def _write_evidence(env: Environment, result: DrillResult) -> None:
    folder = drill_dir(env)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{env.name}-{stamp}.json"
    result.evidence = str(path)
    text = json.dumps(result.to_dict(), indent=2) + "\n"
    text = env.scrub(text)
    path.write_text(text)
    write_atomic(last_path(env), text)


def load_last(env: Environment) -> Mapping[str, Any] | None:
    try:
        return dict(json.loads(last_path(env).read_text()))
    except (OSError, ValueError):
        return None


def last_drill_check(env: Environment) -> Check | None:
    """The last drill's age and result for ``health`` (None before the first drill)."""
    last = load_last(env)
    if not last:
        return None
    try:
        when = _dt.datetime.fromisoformat(str(last.get("started")))
    except ValueError:
        return None
    age_d = (_dt.datetime.now(_dt.UTC) - when).total_seconds() / 86400
    what = f"last restore drill ({last.get('backup')}) {age_d:.1f} days ago"
    if not last.get("ok"):
        return warned(
            "restore drill",
            f"the {what} failed: {last.get('problem')}",
            "fix the cause and run `invoke backup.drill` again",
        )
    return passed("restore drill", f"{what} passed, restore {last.get('restore_seconds')}s")
