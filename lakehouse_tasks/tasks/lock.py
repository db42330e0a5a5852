"""``lock.status`` and ``lock.release``: see and clear an environment's deploy lock."""

from __future__ import annotations

from typing import Any

from invoke import Collection

from ._base import audited, known_env, lakehouse_task

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).


@lakehouse_task()
def status(c: Any, env: str | None = None, json_: bool = False) -> None:
    """Show who holds an environment's deploy lock (free, held or stale)."""
    from ..lock import lock_status
    from ..paths import project_root
    from ..ui import Output

    name = known_env(env)
    info = lock_status(project_root(), name)
    out = Output(json_mode=json_)
    if json_:
        out.json(info.to_dict())
        return
    if info.holder is None:
        out.line(f"{name}: free")
        return
    out.line(f"{name}: {info.state}, {info.holder.describe()} ({info.holder.command})")


@lakehouse_task(help={"force": "remove the lock even though its holder may still be running"})
@audited("lock.release")
def release(c: Any, env: str | None = None, force: bool = False, json_: bool = False) -> None:
    """Remove an environment's deploy lock (a live holder's lock needs --force)."""
    from ..lock import release as release_lock
    from ..paths import project_root
    from ..ui import Output

    name = known_env(env)
    holder = release_lock(project_root(), name, force=force)
    out = Output(json_mode=json_)
    if json_:
        out.json({"environment": name, "released": holder.to_dict() if holder else None})
        return
    if holder is None:
        out.line(f"{name}: the lock was already free")
    else:
        out.line(f"{name}: released the lock of {holder.describe()}")


ns = Collection("lock")
ns.add_task(status)
ns.add_task(release)
