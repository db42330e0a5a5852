"""The slow sections of the status report, each read from the tool's own records (no docker call): deploys and the lock, backups, off-site copies and drills, the last smoke run, plugins, recent events. ``status.slow_sections`` reads them all, each guarded."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..environment import Environment


#: How many deploys, backups and events a report carries (the page shows the newest).
DEPLOYS_KEPT = 20

BACKUPS_KEPT = 20

EVENTS_KEPT = 200

#: The event log is read from its end only: a year of events costs no more than a day.
EVENT_TAIL_BYTES = 512 * 1024

EVENT_WINDOW = _dt.timedelta(days=1)

NO_SMOKE = "no smoke run yet"

NO_OFFSITE = "no off-site copy yet"

NO_DRILL = "no restore drill yet"


def aware(moment: _dt.datetime) -> _dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.UTC)


def parse_time(text: Any) -> _dt.datetime | None:
    if not text:
        return None
    try:
        return aware(_dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")))
    except ValueError:
        return None


def deploys_section(root: Path, environment: str) -> dict[str, Any]:
    """The recorded deployments, newest first, each with who ran it and how long it took.

    The deploy history says what was deployed; the audit log says who ran the task and its
    duration. A history record is written at the end of the run the audit record started, so
    the two are joined by time: the audit run of deploy/rollback that contains the record's
    time. Failed attempts newer than the last success are listed too (they are in the audit
    log only).
    """
    from .. import history
    from ..audit import audit_path, read_records

    records = history.load(root, environment)
    runs = [
        a
        for a in read_records(audit_path(root), environment=environment)
        if a.task in ("deploy", "rollback")
    ]
    deploys: list[dict[str, Any]] = []
    used: set[int] = set()
    for record in records[-DEPLOYS_KEPT:]:
        at = parse_time(record.time)
        match = None
        if at is not None:
            for index, run in enumerate(runs):
                start = aware(run.started)
                end = start + _dt.timedelta(seconds=run.duration_s + 5)
                if index not in used and start - _dt.timedelta(seconds=5) <= at <= end:
                    match = index
        if match is not None:
            used.add(match)
        found = runs[match] if match is not None else None
        deploys.append(
            {
                "id": record.id,
                "time": record.time,
                "kind": record.kind,
                "result": "ok",
                "user": found.user if found else None,
                "host": found.host if found else None,
                "duration_s": round(found.duration_s, 1) if found else None,
                "git_commit": (record.git_commit or "")[:12] or None,
                "services": len(record.services),
                "rehearsal": record.rehearsal,
            }
        )
    last_ok = parse_time(records[-1].time) if records else None
    for index, run in enumerate(runs):
        if index in used or run.result == "ok":
            continue
        started = aware(run.started)
        if last_ok is None or started > last_ok:
            deploys.append(
                {
                    "id": None,
                    "time": started.isoformat(),
                    "kind": run.task,
                    "result": run.result,
                    "user": run.user,
                    "host": run.host,
                    "duration_s": round(run.duration_s, 1),
                    "git_commit": run.commit[:12] or None,
                    "services": None,
                    "rehearsal": None,
                    "error": run.error,
                }
            )
    deploys.sort(key=lambda d: str(d["time"]), reverse=True)
    return {"deploys": deploys[:DEPLOYS_KEPT]}


def lock_section(root: Path, environment: str) -> dict[str, Any]:
    from ..lock import lock_status

    status = lock_status(root, environment)
    holder = status.holder.to_dict() if status.holder else None
    return {"state": status.state, "held": status.holder is not None, "holder": holder}


def backups_section(env: Environment, now: _dt.datetime) -> dict[str, Any]:
    """Local copies (sizes, ages, durations, last verify), the schedule, off-site copies and
    the last restore drill (the last two say so when none exists yet)."""
    from ..data.store import default_dest, list_backups
    from ..schedule import ScheduledRun, backup_schedule_status

    backups, _leftovers = list_backups(default_dest(env), env.name)
    local = []
    for info in backups[:BACKUPS_KEPT]:
        verified = info.verified
        try:  # the off-site plugin's key, which the core manifest type does not carry
            offsite = json.loads((info.path / "manifest.json").read_text()).get("offsite")
        except (OSError, ValueError, AttributeError):
            offsite = None
        local.append(
            {
                "id": info.id,
                "time": info.time.isoformat(),
                "age_s": max(0.0, (now - aware(info.time)).total_seconds()),
                "size": info.size,
                "duration_s": round(info.manifest.duration_seconds, 1),
                "tag": info.manifest.tag,
                "online": info.manifest.online,
                "offsite": offsite if isinstance(offsite, dict) else None,
                "verified": None
                if verified is None
                else {
                    "time": verified.time.isoformat(),
                    "ok": verified.ok,
                    "label": verified.label,
                },
            }
        )
    schedule = backup_schedule_status(env, now=now, backup_times=[b.time for b in backups[:1]])
    run = ScheduledRun.load(env.root, env.name)
    last_run = (
        {"time": run.last_run, "result": run.result, "error": run.error} if run.last_run else None
    )
    verifies: list[dict[str, Any]] = [b["verified"] for b in local if b["verified"]]  # type: ignore[misc]
    return {
        "local": local,
        "count": len(backups),
        "last_verify": max(verifies, key=lambda v: str(v["time"])) if verifies else None,
        "schedule": {**schedule.to_dict(), "overdue": schedule.missed, "last_run": last_run},
        "offsite": offsite_section(env, local),
        "drill": drill_section(env),
    }


def offsite_section(env: Environment, local: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Off-site copies (issue 19, the ``lakehouse-offsite`` plugin), read from what it leaves
    behind without asking the repository (a refresh must not reach the network): the
    ``offsite`` key it writes into each copied backup's manifest, and its record of the last
    copy, ``<state dir>/offsite-<env>.json`` (duration, bytes, the last failure)."""
    from ..paths import state_dir

    try:
        record = json.loads((state_dir(env.root) / f"offsite-{env.name}.json").read_text())
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict):
        record = {}
    last = record.get("last") or {}
    copies = []
    for backup in local:
        offsite = backup.get("offsite")
        if not offsite:
            continue
        copy = {
            "id": backup["id"],
            "snapshot": offsite.get("short_id") or str(offsite.get("snapshot", ""))[:8],
            "repository": offsite.get("repository", ""),
            "time": offsite.get("time") or backup["time"],
            "size": backup["size"],
            "ok": True,
            "duration_s": last.get("seconds") if last.get("backup") == backup["id"] else None,
        }
        copies.append(copy)
    failure = None
    if record.get("failure") and str(record.get("last_failure", "")) > str(
        record.get("last_success") or ""
    ):
        failure = {
            "time": record.get("last_failure"),
            "backup": record.get("failed_backup"),
            "error": str(record.get("failure")),
        }
        # The newest attempt failed: /metrics reports it as the off-site result.
        copies.insert(0, {"id": failure["backup"], "time": failure["time"], "ok": False,
                          "size": 0, "duration_s": None, "snapshot": None})  # fmt: skip
    message = "" if copies else (NO_OFFSITE if not failure else "the off-site copy failed")
    return {
        "copies": copies,
        "last_success": record.get("last_success"),
        "failure": failure,
        "message": message,
    }


def drill_section(env: Environment) -> dict[str, Any]:
    """The last restore drill and its measured restore time (``invoke backup.drill``)."""
    from ..data.drill import load_last

    last = load_last(env)  # type: ignore[arg-type]
    if not last:
        return {"last": None, "message": NO_DRILL}
    return {
        "last": {
            "time": last.get("started"),
            "ok": bool(last.get("ok")),
            "backup": last.get("backup"),
            "source": last.get("source"),
            "restore_s": last.get("restore_seconds"),
            "healthy_s": last.get("healthy_seconds"),
            "total_s": last.get("total_seconds"),
            "problem": last.get("problem") or "",
        },
        "message": "",
    }


def smoke_section(env: Environment) -> dict[str, Any]:
    """The last smoke check, hop by hop (``invoke smoke``, issue 16), read back from the events
    it gives the event log: a passing run's ``smoke.passed`` carries its whole report; a failing
    run leaves one ``smoke.failed`` per failed hop (same ``run_id``), the others passed.
    "no smoke run yet" until one ran."""
    from ..hooks.builtin.event_log import FILE_NAME
    from ..paths import state_dir

    found: list[dict[str, Any]] = []
    run_id = None
    for line in reversed(tail_lines(state_dir(env.root) / FILE_NAME)):
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if not isinstance(raw, dict) or raw.get("environment") != env.name:
            continue
        if raw.get("kind") not in ("smoke.passed", "smoke.failed"):
            continue
        details = raw.get("details") or {}
        this_run = details.get("run_id")
        if run_id is None:
            run_id = this_run
        elif this_run != run_id:
            break
        found.append(raw)
        if raw.get("kind") == "smoke.passed":
            break
    if not found:
        return {"last": None, "message": NO_SMOKE}
    newest = found[0]
    if newest.get("kind") == "smoke.passed":
        hops = [
            {
                "name": h.get("hop"),
                "ok": h.get("verdict") != "failed",
                "verdict": h.get("verdict"),
                "duration_s": h.get("seconds"),
                "detail": h.get("detail") or h.get("cause") or "",
            }
            for h in (newest.get("details") or {}).get("hops") or []
        ]
        return {"last": {"time": newest.get("time"), "ok": True, "hops": hops}, "message": ""}
    hops = []
    for event in found:
        details = event.get("details") or {}
        name = details.get("hop") or details.get("cleanup") or "clean-up"
        hops.append(
            {
                "name": name,
                "ok": False,
                "verdict": "failed",
                "duration_s": details.get("seconds"),
                "detail": str(event.get("message", "")),
            }
        )
    return {
        "last": {"time": newest.get("time"), "ok": False, "hops": hops},
        "message": "the other hops of that run passed or were skipped",
    }


def plugins_section() -> list[dict[str, Any]]:
    from ..hooks.manager import get_plugin_manager

    return [info.to_dict() for info in get_plugin_manager().describe()]


def tail_lines(path: Path, max_bytes: int = EVENT_TAIL_BYTES) -> list[str]:
    """The complete lines of the last ``max_bytes`` of ``path`` (none when it is missing)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first one is cut
    return lines


def events_section(root: Path, environment: str, now: _dt.datetime) -> list[dict[str, Any]]:
    """The environment's events of the last day, newest first."""
    from ..hooks.builtin.event_log import FILE_NAME
    from ..paths import state_dir

    since = now - EVENT_WINDOW
    found: list[dict[str, Any]] = []
    for line in reversed(tail_lines(state_dir(root) / FILE_NAME)):
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if not isinstance(raw, dict) or raw.get("environment") != environment:
            continue
        at = parse_time(raw.get("time"))
        if at is None or at < since:
            continue
        found.append(
            {
                "time": at.isoformat(),
                "kind": str(raw.get("kind", "")),
                "severity": str(raw.get("severity", "")),
                "service": raw.get("service"),
                "message": str(raw.get("message", "")),
            }
        )
        if len(found) >= EVENTS_KEPT:
            break
    return found
