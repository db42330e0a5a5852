"""The status report the page, the JSON API and ``/metrics`` share, built from the data the
terminal tasks already own.

Each section is read through the module that writes it: the health snapshot
(:mod:`lakehouse_tasks.health`), the deploy history and the audit log (who deployed, how long it
took), the lock, the local backups with their verify records, the backup schedule, the
plugins and the event log. Sections whose producer has not run yet (no smoke check, no off-site
copy, no restore drill) say so in words instead of being left out, so a reader can tell "never
ran" from "broken". A section that cannot be read carries its one-line error and the others
still show.

No secret reaches a report: healthcheck outputs and container environments are never copied,
and every free-text string of the finished report (messages, errors, commands, URLs) goes
through the environment's ``scrub`` as a last line of defence (tests check the page and the API against the environment's secret values).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..environment import Environment
    from ..project import Project
    from ..snapshots import HealthSnapshot

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


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _aware(moment: _dt.datetime) -> _dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.UTC)


def _parse_time(text: Any) -> _dt.datetime | None:
    if not text:
        return None
    try:
        return _aware(_dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")))
    except ValueError:
        return None


@dataclass
class StatusReport:
    """Every section of one environment's status at one moment (JSON-able dicts)."""

    environment: str
    project: str
    time: _dt.datetime
    health: dict[str, Any]
    slow: dict[str, Any] = field(default_factory=dict)
    plots: dict[str, Any] = field(default_factory=dict)
    refresh_s: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "project": self.project,
            "time": self.time.isoformat(),
            "refresh_s": self.refresh_s,
            "health": self.health,
            **self.slow,
            "plots": self.plots,
        }


# ---- health ----------------------------------------------------------------------------------
def urls_by_service(project: Project) -> dict[str, str]:
    """Service -> access URL: the plugins' ``access_urls`` name interfaces ("MinIO console"),
    not services, so each URL goes to the service that publishes its port."""
    from urllib.parse import urlsplit

    from ..hooks.manager import get_plugin_manager

    try:
        found = get_plugin_manager().access_urls(env=project.env) or []
        stack = project.stack_for_reading()
    except Exception:  # a broken plugin or config must not hide the health table
        return {}
    by_port = {p.published: name for name, svc in stack.active.items() for p in svc.ports}
    urls: dict[str, str] = {}
    for item in found:
        url = str(getattr(item, "url", ""))
        try:
            port = urlsplit(url).port
        except ValueError:
            continue
        service = by_port.get(port or 0) or str(getattr(item, "service", "") or "")
        if service and url:
            urls.setdefault(service, url)
    return urls


def health_section(
    snapshot: HealthSnapshot, urls: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The health table's rows, without what may hold a secret (healthcheck outputs)."""
    from ..ui import human_bytes, human_duration

    urls = urls or {}
    rows = []
    for r in snapshot.rows:
        rows.append(
            {
                "service": r.service,
                "oneshot": r.oneshot,
                "status": r.status,
                "ok": r.ok,
                "state": r.state,
                "health": r.health,
                "restarts": r.restart_count if r.state != "missing" else None,
                "uptime_s": r.uptime_s,
                "uptime": human_duration(r.uptime_s),
                "cpu_percent": r.cpu_percent,
                "mem_used": r.mem_used,
                "mem_limit": r.mem_limit,
                "memory": "-"
                if r.mem_used is None
                else (
                    f"{human_bytes(r.mem_used)} / {human_bytes(r.mem_limit)}"
                    if r.mem_limit
                    else human_bytes(r.mem_used)
                ),
                "url": r.url or urls.get(r.service, ""),
                "image": r.image,
            }
        )
    return {
        "time": snapshot.time.isoformat(),
        "ok": snapshot.ok,
        "healthy": snapshot.healthy,
        "total": snapshot.total,
        "summary": snapshot.summary,
        "services": rows,
    }


# ---- deploys ---------------------------------------------------------------------------------
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
        at = _parse_time(record.time)
        match = None
        if at is not None:
            for index, run in enumerate(runs):
                start = _aware(run.started)
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
    last_ok = _parse_time(records[-1].time) if records else None
    for index, run in enumerate(runs):
        if index in used or run.result == "ok":
            continue
        started = _aware(run.started)
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


# ---- lock ------------------------------------------------------------------------------------
def lock_section(root: Path, environment: str) -> dict[str, Any]:
    from ..lock import lock_status

    status = lock_status(root, environment)
    holder = status.holder.to_dict() if status.holder else None
    return {"state": status.state, "held": status.holder is not None, "holder": holder}


# ---- backups ---------------------------------------------------------------------------------
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
                "age_s": max(0.0, (now - _aware(info.time)).total_seconds()),
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
    from ..drill import load_last

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


# ---- smoke -----------------------------------------------------------------------------------
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


# ---- plugins and events ----------------------------------------------------------------------
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
        at = _parse_time(raw.get("time"))
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


# ---- the whole report --------------------------------------------------------------------------
def guarded(name: str, read: Callable[[], Any], fallback: Any) -> tuple[Any, str | None]:
    """``read()``, or ``fallback`` and a one-line error: one broken source never blanks the page."""
    try:
        return read(), None
    except Exception as exc:
        return fallback, f"{name}: {exc}"


def slow_sections(project: Project, now: _dt.datetime | None = None) -> dict[str, Any]:
    """The sections that change only when a task runs (read every few refreshes)."""
    env = project.env
    root = env.root
    now = now or _now()
    errors: list[str] = []
    sections: dict[str, Any] = {}
    for name, read, fallback in (
        ("deploys", lambda: deploys_section(root, env.name)["deploys"], []),
        ("lock", lambda: lock_section(root, env.name), {"state": "unknown", "held": False}),
        ("backups", lambda: backups_section(env, now), {}),
        ("smoke", lambda: smoke_section(env), {"last": None, "message": NO_SMOKE}),
        ("plugins", plugins_section, []),
        ("events", lambda: events_section(root, env.name, now), []),
    ):
        value, error = guarded(name, read, fallback)
        sections[name] = value
        if error:
            errors.append(error)
    sections["errors"] = errors
    return sections


def plot_series(samples: Sequence[Mapping[str, Any]], slow: Mapping[str, Any]) -> dict[str, Any]:
    """The plots' data: CPU and memory per service over the kept samples, backup size and
    duration over the last runs (oldest first), deploy durations."""
    cpu: dict[str, list[list[float]]] = {}
    memory: dict[str, list[list[float]]] = {}
    for sample in samples:
        t = float(sample.get("t", 0))
        for service, (cpu_percent, mem_used) in (sample.get("services") or {}).items():
            if cpu_percent is not None:
                cpu.setdefault(service, []).append([t, float(cpu_percent)])
            if mem_used is not None:
                memory.setdefault(service, []).append([t, float(mem_used) / 1024**2])
    local = list(reversed((slow.get("backups") or {}).get("local") or []))
    deploys = [d for d in reversed(slow.get("deploys") or []) if d.get("duration_s") is not None]

    def stamp(text: str) -> float:
        at = _parse_time(text)
        return at.timestamp() if at else 0.0

    return {
        "cpu": cpu,
        "memory_mib": memory,
        "backup_size_mib": [[stamp(b["time"]), b["size"] / 1024**2] for b in local],
        "backup_duration_s": [[stamp(b["time"]), b["duration_s"]] for b in local],
        "deploy_duration_s": [[stamp(d["time"]), d["duration_s"]] for d in deploys],
    }


#: The keys whose values are free text (messages, errors, commands, URLs): the only places a
#: secret could ride along. Names, ids, images and statuses are kept as they are, because dev's
#: placeholder secrets are ordinary words ("minio", "airflow") that also name services.
FREE_TEXT_KEYS = frozenset({"message", "error", "errors", "detail", "command", "url"})


def scrub_strings(value: Any, scrub: Callable[[str], str], *, free_text: bool = False) -> Any:
    """``value`` with ``scrub`` applied to every string under a :data:`FREE_TEXT_KEYS` key."""
    if isinstance(value, str):
        return scrub(value) if free_text else value
    if isinstance(value, Mapping):
        return {
            k: scrub_strings(v, scrub, free_text=free_text or k in FREE_TEXT_KEYS)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_strings(v, scrub, free_text=free_text) for v in value]
    return value


def build_report(
    project: Project,
    snapshot: HealthSnapshot,
    slow: Mapping[str, Any],
    samples: Iterable[Mapping[str, Any]],
    *,
    refresh_s: float,
    urls: Mapping[str, str] | None = None,
) -> StatusReport:
    report = StatusReport(
        environment=project.env.name,
        project=project.compose.project_name,
        time=snapshot.time,
        health=health_section(snapshot, urls),
        slow=dict(slow),
        plots=plot_series(list(samples), slow),
        refresh_s=refresh_s,
    )
    return report


def report_document(report: StatusReport, env: Environment) -> dict[str, Any]:
    """The report as the API serves it: JSON-able and scrubbed of every secret value."""
    from ..masking import Scrubber
    from ..ui import to_jsonable

    scrub = Scrubber(env.secret_values)  # sorted once per report, not once per string
    doc = to_jsonable(report.to_dict())
    plots = doc.pop("plots", {})  # numbers and service names only
    scrubbed: dict[str, Any] = scrub_strings(doc, scrub)
    scrubbed["plots"] = plots
    return scrubbed
