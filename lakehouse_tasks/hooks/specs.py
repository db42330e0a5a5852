"""Every hook lakehouse-ops calls, grouped by lifecycle phase (modelled on pytest's hookspec.py).

A plugin implements any subset of these with ``from lakehouse_tasks.plugin import hookimpl``; it may
accept only the arguments it needs. The host never calls ``pm.hook`` directly: it goes through
the typed facade :class:`lakehouse_tasks.hooks.manager.LakehousePlugins`, which also applies the
failure policy written beside each spec below (see docs/PLUGINS.md):

* **gating** hooks can stop a task: an exception in the plugin ends the task with a clean
  ``LakehouseError`` naming the plugin;
* **contributing** hooks add things the host acts on; how a failure is handled is stated per
  hook (what is deployed or backed up must be exact, so those stop the task);
* **observer** hooks are told what happened: an exception is reported on stderr with the
  plugin's name, the task goes on and the other plugins still get the call.

docs/PLUGINS.md's hook reference is generated from these docstrings
(``invoke plugins --write-reference``); a test fails when it is out of date.
"""

# Specs have no body by design (pluggy never calls them), so mypy's empty-body check does not
# apply here.
# mypy: disable-error-code="empty-body"

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from .. import PROJECT_NAME

if TYPE_CHECKING:
    from pathlib import Path

    from ..checks import Check
    from ..environment import Environment
    from ..events import Event
    from ..project import Project
    from .types import AccessURL, BackupCopy, ExtraArtefact

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# -------------------------------------------------------------------------------------------
# Configuration hooks: what the stack is made of
# -------------------------------------------------------------------------------------------


@hookspec
def lakehouse_compose_files(env: Environment, rehearsal: bool) -> list[str | Path]:
    """Add compose files to an environment's project (this is how the monitoring stack joins).

    Fires whenever a task opens an environment as a compose project (``config``, ``plan``,
    ``deploy``, ``health``, ``teardown`` ...), before any compose command runs. The files are
    layered after the base file and the environment's override, in plugin call order.

    Failure policy: contributing, fatal. An exception, or a file that does not exist, stops the
    task with a ``LakehouseError`` (exit 2) naming the plugin, because a partial stack must
    never be deployed.

    :param env: The resolved, validated environment (``env.name``, ``env.get("X_PORT")``,
        ``env.flag("ENABLE_MONITORING")``, ``env.root``).
    :param rehearsal: True when the project runs on the offline stand-in images
        (``--rehearsal``); a plugin that adds services should then also add an override that
        swaps their images for stand-ins.
    :return: A list of compose file paths (``str`` or ``Path``; a relative path is relative to
        ``env.root``), or ``None``/``[]`` to add nothing.
    """


@hookspec
def lakehouse_access_urls(env: Environment) -> list[AccessURL]:
    """Contribute the URLs a person opens to use the environment's web interfaces.

    Fires when a task prints where the stack can be reached (after ``deploy``, in ``status``
    and ``urls``). The built-in plugin ``lakehouse.access_urls`` contributes MinIO console,
    Spark UI, Trino, Superset and Airflow.

    Failure policy: observer. An exception is reported on stderr with the plugin's name and
    only that plugin's URLs are missing.

    :param env: The resolved environment (ports, ``BIND_ADDRESS``, ``HTTPS_MODE``).
    :return: A list of :class:`~lakehouse_tasks.plugin.AccessURL`, or ``None``/``[]``; set
        its ``service`` to the compose service serving the interface, so that ``health``
        shows the URL on that service's row.
    """


# -------------------------------------------------------------------------------------------
# Deploy hooks: before and after the stack changes
# -------------------------------------------------------------------------------------------


@hookspec
def lakehouse_preflight_checks(project: Project) -> list[Check]:
    """Add checks to the preflight that runs before a deploy (and with ``invoke preflight``).

    Fires once per preflight, after the built-in host checks. A returned check whose status is
    ``fail`` fails the preflight like a built-in one (exit 3). The facade sets each check's
    ``source`` to the plugin's name, so a report says who asked.

    Failure policy: gating. An exception stops the task with a ``LakehouseError`` (exit 3)
    naming the plugin and the exception.

    :param project: The opened project (``project.env``, ``project.compose``,
        ``project.rehearsal``).
    :return: A list of :class:`~lakehouse_tasks.checks.Check`, or ``None``/``[]``.
    """


@hookspec(firstresult=True)
def lakehouse_pre_deploy(project: Project, services: list[str]) -> str | None:
    """Veto a deploy before any container is created or replaced.

    Fires after a passing preflight, right before ``compose up``. Stops at first non-None
    result: the first plugin that returns a reason vetoes the deploy and the later ones are
    not called.

    Failure policy: gating. A veto or an exception stops the deploy with a ``LakehouseError``
    (exit 4) naming the plugin and the reason.

    :param project: The opened project about to be deployed.
    :param services: The services about to be started, in start order (all of them for a full
        deploy).
    :return: ``None`` to allow the deploy, or a one-sentence reason (``str``) to veto it.
    """


@hookspec
def lakehouse_post_deploy(project: Project, result: Any) -> None:
    """Act after a deploy or rollback has finished, whether it succeeded or not.

    Fires once at the end of ``deploy`` (and ``rollback``), after the health wait and any
    automatic rollback.

    Failure policy: observer. An exception is reported on stderr with the plugin's name; the
    deploy's outcome and exit code are unchanged and the other plugins still get the call.

    :param project: The deployed project.
    :param result: The deploy task's result object (its outcome, the services and their
        health, the duration); read it, do not change it.
    :return: Nothing; the return value is ignored.
    """


@hookspec
def lakehouse_post_teardown(project: Project, result: Any) -> None:
    """Act after ``teardown`` has stopped and removed the environment's containers.

    Fires once at the end of ``teardown``, also when volumes were kept.

    Failure policy: observer (see :func:`lakehouse_post_deploy`).

    :param project: The project that was torn down.
    :param result: The teardown task's result object (what was removed, what was kept).
    :return: Nothing; the return value is ignored.
    """


# -------------------------------------------------------------------------------------------
# Runtime hooks: health and events
# -------------------------------------------------------------------------------------------


@hookspec
def lakehouse_health_snapshot(project: Project, snapshot: Any) -> None:
    """Observe each health snapshot of the stack (for metrics exporters and dashboards).

    Fires every time ``health`` (or ``health --watch``, once per round, or the deploy's health
    wait) has taken a snapshot of every service.

    Failure policy: observer (see :func:`lakehouse_post_deploy`).

    :param project: The project whose services were inspected.
    :param snapshot: The health snapshot: every service's state, health and restart count at
        one instant; read it, do not change it.
    :return: Nothing; the return value is ignored.
    """


@hookspec
def lakehouse_event(event: Event, env: Environment | None) -> None:
    """Receive every :class:`~lakehouse_tasks.events.Event` any task emits (alerts, audit logs).

    Fires once per event, synchronously, in the task that produced it: deploy started /
    succeeded / failed, rollback, service unhealthy / recovered / restarted / exited,
    backup and restore outcomes, teardown, missed backup schedules. Filter on ``event.kind``
    and ``event.level``. The built-in plugin ``lakehouse.event_log`` appends each event to
    ``<state dir>/events.jsonl``.

    Failure policy: observer. An exception is reported on stderr with the plugin's name and
    every other plugin still receives the event. Keep it quick: a slow channel slows the task.

    :param event: The event (``kind``, ``environment``, ``service``, ``severity``,
        ``message``, ``time``, ``details``; ``event.to_dict()`` for JSON).
    :param env: The resolved environment the event is about, with every layer the task used
        (``--env-file`` files included), or ``None`` when the producer had none loaded (for
        example a scheduled run that failed before loading it); read settings such as alert
        channels from it rather than reloading the environment by name.
    :return: Nothing; the return value is ignored.
    """


# -------------------------------------------------------------------------------------------
# Backup hooks: what a backup contains and what happens to it
# -------------------------------------------------------------------------------------------


@hookspec
def lakehouse_backup_artefacts(project: Project, workdir: Path) -> list[ExtraArtefact]:
    """Contribute extra files to a backup (for example a Grafana dashboard export).

    Fires during ``backup``, after the built-in artefacts are written to ``workdir`` and before
    checksums are computed. Write each file into ``workdir`` and return it; the backup then
    checksums it and records it in the manifest like its own artefacts.

    Failure policy: contributing, fatal. An exception, or an artefact that is not a file inside
    ``workdir``, fails the backup with a ``LakehouseError`` (exit 6) naming the plugin: a
    backup that silently lacks an expected artefact is worse than none.

    :param project: The project being backed up.
    :param workdir: The directory this backup is being assembled in.
    :return: A list of :class:`~lakehouse_tasks.plugin.ExtraArtefact`, or ``None``/``[]``.
    """


@hookspec
def lakehouse_post_backup(project: Project, manifest_path: Path) -> None:
    """Act after a backup has completed and its manifest is written (e.g. copy it off the host).

    Fires once at the end of a successful ``backup``, after verification and retention.

    Failure policy: observer (see :func:`lakehouse_post_deploy`): the backup stays valid on
    the host and the task still succeeds; the failure is reported on stderr with the plugin's
    name.

    :param project: The project that was backed up.
    :param manifest_path: The backup's ``manifest.json``; its directory holds every artefact.
    :return: Nothing; the return value is ignored.
    """


# -------------------------------------------------------------------------------------------
# Backup copy hooks: backups kept somewhere else (off-site), read back, checked, pruned
# -------------------------------------------------------------------------------------------


@hookspec
def lakehouse_backup_copies(env: Environment) -> list[BackupCopy]:
    """List the copies of an environment's backups a plugin keeps elsewhere (off the host).

    Fires when ``backup.list`` shows where each backup lives (local, off-site, both), when
    ``restore`` or ``backup.drill`` look for a backup that is not on the host, and when
    ``health`` reports the newest off-site copy.

    Failure policy: observer. An exception is reported on stderr with the plugin's name and
    its copies are left out of the listing; the task goes on with the local backups.

    :param env: The resolved environment whose backups are listed.
    :return: A list of :class:`~lakehouse_tasks.plugin.BackupCopy` (one per backup held),
        or ``None``/``[]``.
    """


@hookspec(firstresult=True)
def lakehouse_fetch_backup(env: Environment, backup_id: str, dest: Path) -> Path | None:
    """Bring a backup that is not on the host back from a copy, into a directory under ``dest``.

    Fires when ``restore --backup ID`` or ``backup.drill --backup ID`` names a backup that
    ``dest`` does not hold. Stops at first non-None result: the first plugin that returns a
    directory has fetched it and the later ones are not called. The directory must hold
    ``manifest.json`` and every artefact; the host recomputes every checksum against the
    manifest before anything is touched.

    Failure policy: contributing, fatal. A ``LakehouseError`` keeps its message and exit code
    (the plugin names the problem: wrong password, unreachable repository, missing snapshot,
    no space); any other exception stops the task with exit 6 naming the plugin.

    :param env: The resolved environment the backup belongs to.
    :param backup_id: The backup's id (``<env>-<UTC timestamp>[-tag]``).
    :param dest: The directory local backups live in (``BACKUP_DIR``); fetch into
        ``dest / backup_id`` (atomically: assemble beside it and rename).
    :return: The directory of the fetched backup, or ``None`` when this plugin has no copy.
    """


@hookspec
def lakehouse_verify_copies(env: Environment, read_data_subset: str | None) -> list[Check]:
    """Check the integrity of the place backup copies are kept (``backup.verify --offsite``).

    Fires once per ``backup.verify --offsite``. A returned check whose status is ``fail``
    makes the task exit 6, like a corrupted local backup.

    Failure policy: gating. A ``LakehouseError`` keeps its message and exit code; any other
    exception stops the task with exit 6 naming the plugin.

    :param env: The resolved environment whose copies are checked.
    :param read_data_subset: ``None`` to check the structure only, or a slice of the data to
        read back and check as well (``"1/5"``, ``"10%"``, ``"all"``), so large repositories
        can be checked over several runs.
    :return: A list of :class:`~lakehouse_tasks.checks.Check`, or ``None``/``[]``.
    """


@hookspec
def lakehouse_post_prune(env: Environment, result: Any) -> None:
    """Apply the retention ``backup.prune`` just applied on the host to the backups' copies.

    Fires once at the end of ``backup.prune`` (also ``--dry-run``) and of a scheduled run,
    after the local backups were pruned.

    Failure policy: observer (see :func:`lakehouse_post_deploy`): the local pruning stands;
    the failure is reported on stderr with the plugin's name.

    :param env: The resolved environment that was pruned.
    :param result: The :class:`~lakehouse_tasks.retention.PruneResult`: the policy
        (``keep_last``, ``keep_daily``, ``keep_weekly``, ``keep_monthly``, ``max_age_days``),
        ``kept`` and ``deleted`` backups, ``dry_run``, and ``protected`` (the id of the newest
        verified backup, which must never be deleted anywhere).
    :return: Nothing; the return value is ignored.
    """


@hookspec
def lakehouse_status_checks(env: Environment) -> list[Check]:
    """Add lines to ``health``: facts about the environment that are not a service's state.

    Fires once per ``health`` (once per ``--watch`` session), after the services' snapshot.
    The off-site plugin reports the age of the newest off-site copy here; a ``warn`` is
    printed as a warning and, with ``--strict-backups``, makes the exit code 1.

    Failure policy: observer. An exception is reported on stderr with the plugin's name and
    only that plugin's checks are missing.

    :param env: The resolved environment being reported on.
    :return: A list of :class:`~lakehouse_tasks.checks.Check`, or ``None``/``[]``.
    """
