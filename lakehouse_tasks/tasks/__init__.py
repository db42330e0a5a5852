"""The task namespace: one collection per area, composed here (as in ``invocations``)."""

from __future__ import annotations

from invoke import Collection

from . import audit as audit_tasks
from . import backup, bench, config, env, health, preflight, restore, secrets
from . import deploy as deploy_tasks
from . import lock as lock_tasks
from . import logs as logs_tasks
from . import plugins as plugins_tasks
from . import rehearsal as rehearsal_tasks
from . import security as security_tasks
from . import serve as serve_tasks
from . import smoke as smoke_tasks
from . import teardown as teardown_tasks

ns = Collection()
ns.add_collection(env.ns)
ns.add_collection(secrets.ns)
ns.add_task(config.config_, name="config")
ns.add_task(config.plan)
ns.add_task(plugins_tasks.plugins)
ns.add_task(health.health)
ns.add_task(smoke_tasks.smoke)
ns.add_task(preflight.preflight)
ns.add_collection(backup.ns)
ns.add_task(restore.restore)
ns.add_task(deploy_tasks.deploy)
ns.add_task(deploy_tasks.history_, name="history")
ns.add_task(deploy_tasks.rollback)
ns.add_task(teardown_tasks.teardown)
ns.add_collection(lock_tasks.ns)
ns.add_task(logs_tasks.logs)
ns.add_task(audit_tasks.audit)
ns.add_task(security_tasks.security)
ns.add_task(serve_tasks.serve)
ns.add_task(bench.bench)
ns.add_collection(rehearsal_tasks.ns)

__all__ = ["ns"]
