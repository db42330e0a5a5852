"""Hooks of the ``offsite`` plugin: every backup copied into a restic repository.

* ``lakehouse_post_backup``: ``restic backup`` of the finished backup directory (tags
  ``lakehouse``, ``env=<env>``, ``backup=<id>``, the backup's own time), then the snapshot id
  recorded in the backup's ``manifest.json`` (``"offsite"``), the outcome in
  ``<state dir>/offsite-<env>.json`` and an ``backup.offsite_succeeded`` /
  ``backup.offsite_failed`` event (the alerts plugin delivers the failure);
* ``lakehouse_backup_copies``: the snapshots of the environment, for ``backup.list``;
* ``lakehouse_fetch_backup``: ``restic restore`` of a backup the host no longer holds, after a
  free-space check, assembled beside its final place and renamed;
* ``lakehouse_verify_copies``: ``restic check`` (``--read-data-subset``), and every local
  manifest's snapshot still present;
* ``lakehouse_post_prune``: the host's retention applied to the snapshots with the same pure
  function (:func:`lakehouse_tasks.plugin.select_for_pruning`), the newest verified backup
  protected, then ``restic forget`` + ``restic prune``;
* ``lakehouse_status_checks``: the age of the newest off-site copy in ``health`` (a warning and
  a ``backup.offsite_missed`` event when older than ``OFFSITE_MAX_AGE_HOURS``).

Configuration (env files, docs/BACKUP.md): ``OFFSITE_REPOSITORY``, ``OFFSITE_PASSWORD_FILE``,
``OFFSITE_CREDENTIALS_FILE``, ``OFFSITE_MAX_AGE_HOURS``, ``OFFSITE_INIT``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse_tasks.plugin import (
    BackupCopy,
    Check,
    Event,
    EventKind,
    ExitCode,
    LakehouseError,
    check_free_space,
    default_backup_dir,
    emit_event,
    failed,
    hookimpl,
    passed,
    select_for_pruning,
    state_dir,
    warned,
)

from .restic import TAG_ALL, Restic, ResticConfig, config_from_env

if TYPE_CHECKING:
    from lakehouse_tasks.plugin import Environment, Project

LOCATION = "off-site"
MANIFEST = "manifest.json"
FETCH_PREFIX = ".tmp-"


def _info(text: str) -> None:
    sys.stderr.write(f"offsite: {text}\n")
    sys.stderr.flush()


def _config(env: Environment) -> ResticConfig | None:
    return config_from_env(env, state_dir(Path(env.root)))


def _emit(event: Event, env: Environment) -> None:
    emit_event(event, env)


# ---- the record of the last copy ------------------------------------------------------------
def record_path(env: Environment) -> Path:
    return state_dir(Path(env.root)) / f"offsite-{env.name}.json"


def load_record(env: Environment) -> dict[str, Any]:
    try:
        return dict(json.loads(record_path(env).read_text()))
    except (OSError, ValueError):
        return {}


def _save_record(env: Environment, record: dict[str, Any]) -> None:
    path = record_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


# ---- snapshots ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """One restic snapshot of a backup (``Prunable`` for the retention function)."""

    id: str
    short_id: str
    backup_id: str
    time: _dt.datetime
    verified: bool = False

    @property
    def is_verified(self) -> bool:
        return self.verified


def _parse_time(text: str) -> _dt.datetime:
    # restic writes nanoseconds; fromisoformat takes microseconds
    head, _, rest = text.partition(".")
    frac = ""
    tz = ""
    if rest:
        digits = "".join(ch for ch in rest if ch.isdigit())
        frac = "." + digits[:6]
        tz = rest[len(digits) :]
    else:
        head, tz = text[:19], text[19:]
    tz = "+00:00" if tz in ("Z", "") else tz
    return _dt.datetime.fromisoformat(head + frac + tz).astimezone(_dt.UTC)


def snapshots_of(restic: Restic) -> list[Snapshot]:
    found = []
    for item in restic.snapshots():
        tags = item.get("tags") or []
        backup = next((t.split("=", 1)[1] for t in tags if t.startswith("backup=")), "")
        if not backup:
            continue
        found.append(
            Snapshot(
                id=str(item["id"]),
                short_id=str(item.get("short_id") or item["id"][:8]),
                backup_id=backup,
                time=_parse_time(str(item["time"])),
            )
        )
    found.sort(key=lambda s: s.time)
    return found


def _write_offsite_key(manifest_path: Path, snapshot: Snapshot, config: ResticConfig) -> None:
    data = json.loads(manifest_path.read_text())
    data["offsite"] = {
        "snapshot": snapshot.id,
        "short_id": snapshot.short_id,
        "repository": config.location,
        "time": _now().isoformat(),
    }
    tmp = manifest_path.with_name(manifest_path.name + ".part")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, manifest_path)


# ---- copying --------------------------------------------------------------------------------
def copy_backup(env: Environment, backup_dir: Path, config: ResticConfig) -> dict[str, Any]:
    """``restic backup`` of one finished backup directory; returns the record of the copy."""
    manifest = json.loads((backup_dir / MANIFEST).read_text())
    ident = str(manifest["id"])
    when = _dt.datetime.fromisoformat(str(manifest["time"])).astimezone(_dt.UTC)
    restic = Restic(config)
    restic.open()
    started = time.monotonic()
    summary = restic.json(
        [
            "backup",
            ".",
            "--host",
            config.host,
            "--tag",
            f"{TAG_ALL},{config.env_tag()},backup={ident}",
            "--time",
            when.strftime("%Y-%m-%d %H:%M:%S"),
            "--exclude",
            "verified.json",
        ],
        cwd=backup_dir,
        timeout=None,
        what=f"copy backup {ident}",
    )
    seconds = time.monotonic() - started
    short = str((summary or {}).get("snapshot_id") or "")
    snapshot = next(
        (
            s
            for s in reversed(snapshots_of(restic))
            if s.backup_id == ident and s.id.startswith(short)
        ),
        None,
    )
    if snapshot is None:
        raise LakehouseError(
            f"restic reported snapshot {short or '?'} of backup {ident}, but the repository "
            f"{config.location} does not list it; run `invoke backup.verify --offsite`.",
            ExitCode.INTEGRITY_FAILED,
        )
    _write_offsite_key(backup_dir / MANIFEST, snapshot, config)
    return {
        "backup": ident,
        "snapshot": snapshot.id,
        "short_id": snapshot.short_id,
        "time": _now().isoformat(),
        "backup_time": when.isoformat(),
        "seconds": round(seconds, 3),
        "bytes_processed": int((summary or {}).get("total_bytes_processed") or 0),
        "bytes_added": int((summary or {}).get("data_added") or 0),
        "repository": config.location,
    }


@hookimpl
def lakehouse_post_backup(project: Project, manifest_path: Path) -> None:
    env = project.env
    config = _config(env)
    if config is None:
        return
    backup_dir = Path(manifest_path).parent
    record = load_record(env)
    try:
        done = copy_backup(env, backup_dir, config)
    except LakehouseError as exc:
        record.update(
            {
                "last_failure": _now().isoformat(),
                "failure": exc.message,
                "failed_backup": backup_dir.name,
            }
        )
        _save_record(env, record)
        _emit(
            Event(
                EventKind.OFFSITE_COPY_FAILED,
                env.name,
                f"Off-site copy of backup {backup_dir.name} failed: {exc.message}",
                details={"backup": backup_dir.name, "repository": config.location},
            ),
            env,
        )
        raise
    record.update({"last_success": done["time"], "last": done})
    record.pop("failure", None)
    record.pop("last_failure", None)
    record.pop("failed_backup", None)
    _save_record(env, record)
    _info(
        f"backup {done['backup']} copied to {config.location} as snapshot {done['short_id']} "
        f"({done['bytes_added']} new bytes of {done['bytes_processed']}, {done['seconds']:.1f}s)"
    )
    _emit(
        Event(
            EventKind.OFFSITE_COPY_SUCCEEDED,
            env.name,
            f"Backup {done['backup']} copied off-site (snapshot {done['short_id']})",
            details={k: done[k] for k in ("backup", "snapshot", "seconds", "bytes_added")},
        ),
        env,
    )


# ---- listing and fetching -------------------------------------------------------------------
@hookimpl
def lakehouse_backup_copies(env: Environment) -> list[Any]:
    config = _config(env)
    if config is None:
        return []
    restic = Restic(config)
    return [
        BackupCopy(backup_id=s.backup_id, location=LOCATION, ref=s.short_id, time=s.time)
        for s in snapshots_of(restic)
    ]


def restore_size(restic: Restic, snapshot: Snapshot) -> int:
    data = restic.json(["stats", snapshot.id, "--mode", "restore-size"], what="size a snapshot")
    return int((data or {}).get("total_size") or 0)


@hookimpl
def lakehouse_fetch_backup(env: Environment, backup_id: str, dest: Path) -> Path | None:
    config = _config(env)
    if config is None:
        return None
    restic = Restic(config)
    restic.open()
    matches = [s for s in snapshots_of(restic) if s.backup_id == backup_id]
    if not matches:
        raise LakehouseError(
            f"Backup {backup_id} is neither in {dest} nor in the off-site repository "
            f"{config.location} (if it was there, its snapshot has been deleted); list the "
            "backups that exist with `invoke backup.list`.",
            ExitCode.BAD_INPUT,
        )
    snapshot = matches[-1]
    dest = Path(dest)
    final = dest / backup_id
    work = dest / f"{FETCH_PREFIX}{backup_id}"
    check_free_space(dest, restore_size(restic, snapshot), what=f"fetch of backup {backup_id}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / ".pid").write_text(str(os.getpid()))
    try:
        _info(f"fetching backup {backup_id} from {config.location} (snapshot {snapshot.short_id})")
        restic.run(
            ["restore", snapshot.id, "--target", str(work)],
            timeout=None,
            what=f"restore snapshot {snapshot.short_id}",
        )
        if not (work / MANIFEST).is_file():
            raise LakehouseError(
                f"Snapshot {snapshot.short_id} in {config.location} holds no manifest.json; it "
                "is not a lakehouse backup, restore another one.",
                ExitCode.INTEGRITY_FAILED,
            )
        _write_offsite_key(work / MANIFEST, snapshot, config)
        (work / ".pid").unlink(missing_ok=True)
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final


# ---- checking -------------------------------------------------------------------------------
def _local_manifests(env: Environment) -> list[dict[str, Any]]:
    dest = default_backup_dir(env)
    found = []
    if not dest.is_dir():
        return found
    for child in sorted(dest.iterdir()):
        path = child / MANIFEST
        if child.name.startswith(".") or not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if data.get("environment") == env.name:
            found.append(data)
    return found


@hookimpl
def lakehouse_verify_copies(env: Environment, read_data_subset: str | None) -> list[Check]:
    config = _config(env)
    if config is None:
        return []
    restic = Restic(config)
    restic.open()
    args = ["check"]
    if read_data_subset in ("all", "100%"):
        args.append("--read-data")
    elif read_data_subset:
        args += ["--read-data-subset", read_data_subset]
    what = "check the repository" + (f" (data {read_data_subset})" if read_data_subset else "")
    done = restic.run(args, timeout=None, check=False, what=what)
    checks: list[Check] = []
    if done.returncode == 0:
        checks.append(passed("restic check", f"{config.location}: no errors ({what})"))
    else:
        from .restic import classify

        error = classify(restic, done.returncode, restic.scrub(done.stderr), what)
        if error.exit_code != ExitCode.DEPLOY_FAILED:
            raise error
        lines = [ln.strip() for ln in restic.scrub(done.stdout + done.stderr).splitlines()]
        problem = next(
            (ln for ln in lines if "error" in ln.lower() and "no errors" not in ln.lower()),
            lines[-1] if lines else "restic check failed",
        )
        checks.append(
            failed(
                "restic check",
                f"The off-site repository {config.location} is damaged: {problem}",
                "copy the affected backups again (`invoke backup`) and run `restic prune` "
                "(docs/BACKUP.md, a damaged repository)",
            )
        )
    present = {s.id for s in snapshots_of(restic)}
    for manifest in _local_manifests(env):
        record = manifest.get("offsite") or {}
        recorded = record.get("snapshot")
        # only copies into this repository (a backup copied before OFFSITE_REPOSITORY changed
        # records another one)
        if recorded and record.get("repository") == config.location and recorded not in present:
            checks.append(
                failed(
                    f"snapshot of {manifest['id']}",
                    f"Backup {manifest['id']} records off-site snapshot {recorded[:8]}, which "
                    f"is no longer in {config.location} (deleted outside lakehouse-ops)",
                    "copy it again with `invoke backup` or accept that it is local only",
                )
            )
    if len(checks) == 1 and checks[0].status.value == "pass":
        checks.append(passed("snapshots", "every local backup's recorded snapshot is present"))
    return checks


# ---- retention ------------------------------------------------------------------------------
@hookimpl
def lakehouse_post_prune(env: Environment, result: Any) -> None:
    config = _config(env)
    if config is None:
        return
    restic = Restic(config)
    restic.open()
    policy = result.policy
    snaps = snapshots_of(restic)
    protected = result.protected
    keep, delete = select_for_pruning(
        snaps,
        policy.keep_last,
        policy.max_age_days,
        _now(),
        keep_daily=policy.keep_daily,
        keep_weekly=policy.keep_weekly,
        keep_monthly=policy.keep_monthly,
        protected=lambda s: protected is not None and s.backup_id == protected,
    )
    if not delete:
        _info(f"off-site: keeping all {len(keep)} snapshot(s) in {config.location}")
        return
    names = ", ".join(s.backup_id for s in delete)
    if result.dry_run:
        _info(f"off-site: would forget {len(delete)} snapshot(s): {names}")
        return
    restic.run(["forget", *(s.id for s in delete)], timeout=None, what="forget old snapshots")
    restic.run(["prune"], timeout=None, what="prune the repository")
    _info(f"off-site: forgot {len(delete)} snapshot(s) and pruned {config.location}: {names}")


# ---- health ---------------------------------------------------------------------------------
@hookimpl
def lakehouse_status_checks(env: Environment) -> list[Check]:
    try:
        config = _config(env)
    except LakehouseError as exc:
        return [warned("off-site copy", exc.message, "fix the OFFSITE_* settings")]
    if config is None:
        return []
    record = load_record(env)
    name = "off-site copy"
    hint = "run `invoke backup` and look at its off-site copy's error (docs/BACKUP.md)"
    last = record.get("last_success")
    now = _now()
    if record.get("failure") and (not last or str(record.get("last_failure", "")) > str(last)):
        detail = f"the last off-site copy failed: {record['failure']}"
        return [warned(name, detail, hint)]
    if not last:
        detail = f"no backup of {env.name} has been copied to {config.location} yet"
        _emit(Event(EventKind.OFFSITE_COPY_MISSED, env.name, detail), env)
        return [warned(name, detail, hint)]
    when = _dt.datetime.fromisoformat(str(last))
    age_h = (now - when).total_seconds() / 3600
    backup = (record.get("last") or {}).get("backup", "?")
    detail = f"newest off-site copy {backup} is {age_h:.1f} h old ({config.location})"
    if age_h > config.max_age_hours:
        message = (
            f"the off-site copy of {env.name} is overdue: {detail}, more than "
            f"OFFSITE_MAX_AGE_HOURS={config.max_age_hours:g}"
        )
        _emit(
            Event(
                EventKind.OFFSITE_COPY_MISSED,
                env.name,
                message,
                details={"age_hours": round(age_h, 2), "backup": backup},
            ),
            env,
        )
        return [warned(name, message, hint)]
    return [passed(name, detail)]
