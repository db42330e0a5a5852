"""Backend conformance: the same lifecycle, with the same rules, on compose and on swarm.

One test, parametrized over the two backends, against the real engine (a single-node swarm
for the swarm half): deploy a postgres stand-in with a named volume and a busybox stand-in
with a named volume as ``prod``; the health snapshot is healthy; volume removal is refused
without a fresh backup (the prod rule); rows are written, a second deploy takes the automatic
pre-deploy backup; a backup is taken, the data changed, the backup restored and the rows are
back; a teardown that keeps the volumes and a deploy after it (its pre-deploy backup archives
the stopped database's volume) keep every row; teardown with ``--remove-volumes`` then passes
the rule and removes the volumes. Every event reaches the plugins with the resolved
environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.data.backup import create_backup
from lakehouse_tasks.data.restore import restore_backup
from lakehouse_tasks.data.store import list_backups
from lakehouse_tasks.deploy import DeployOptions, deploy
from lakehouse_tasks.errors import RefusedError
from lakehouse_tasks.events import EventKind
from lakehouse_tasks.teardown import teardown
from lakehouse_tasks.testing import RecordingPlugin
from tests.engine.backend_world import backend_world

pytestmark = [pytest.mark.engine, pytest.mark.slow]


@pytest.fixture(params=["compose", "swarm"])
def world(
    request: pytest.FixtureRequest,
    lakehouse_project: Path,
    standin_images: dict[str, str],
    lakehouse_plugins: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    recorder = RecordingPlugin()
    lakehouse_plugins(("recorder", recorder))
    with backend_world(
        request,
        lakehouse_project,
        standin_images,
        monkeypatch,
        env="prod",
        hint="conf",
        password="conformance-password-0123456789",
    ) as world:
        world.recorder = recorder
        yield world


def test_the_same_lifecycle_and_rules_on_every_backend(world: Any) -> None:
    backend = world.backend
    options = DeployOptions(skip_preflight=True, timeout=240)

    first = deploy(world.project(), options, backend=backend)
    assert first.ok, first.summary
    assert "backup skipped: the stack holds no data yet" in first.notes
    assert (first.record is not None) == backend.keeps_history

    snapshot = backend.snapshot(world.project(), resources=False)
    assert snapshot.ok, [(r.service, r.status) for r in snapshot.rows]
    assert {r.service for r in snapshot.rows} == {"metastore-db", "store"}

    # prod: the volumes may not go without a backup younger than 24 h
    with pytest.raises(RefusedError, match="it has no backup"):
        teardown(world.project(), backend=backend, remove_volumes=True, yes=True)
    assert set(backend.running_services(world.project())) == {"metastore-db", "store"}

    world.psql("CREATE TABLE kept (id int PRIMARY KEY)")
    world.psql("INSERT INTO kept SELECT generate_series(1, 100)")

    # a deploy of a stack holding data backs it up first
    second = deploy(world.project(), options, backend=backend)
    assert second.ok, second.summary
    assert any(n.startswith("backup taken before deploy: ") for n in second.notes), second.notes

    manifest = create_backup(world.project(), backend=backend, tag="conformance")
    world.psql("DELETE FROM kept WHERE id > 10")
    assert world.psql("SELECT count(*) FROM kept") == "10"
    backups, _ = list_backups(world.root / "backups", "prod")
    info = next(b for b in backups if b.id == manifest.id)
    result = restore_backup(world.project(), info, backend=backend, safety_backup=False)
    assert {r["status"] for r in result.restored} == {"ok"}
    assert world.psql("SELECT count(*) FROM kept") == "100"

    # a teardown that keeps the volumes, then a deploy: the pre-deploy backup archives the
    # stopped database's data volume (nothing runs to dump), and the data is still there
    kept = teardown(world.project(), backend=backend, yes=True)
    assert kept.ok and kept.volumes_kept and not kept.volumes_removed, kept.to_dict()
    assert backend.running_services(world.project()) == []
    third = deploy(world.project(), options, backend=backend)
    assert third.ok, third.summary
    (note,) = [n for n in third.notes if n.startswith("backup taken before deploy: ")]
    backups, _ = list_backups(world.root / "backups", "prod")
    at_rest = next(b for b in backups if b.id == note.removeprefix("backup taken before deploy: "))
    assert ("volume-archive", "db-data") in {(a.kind, a.source) for a in at_rest.manifest.artefacts}
    assert world.psql("SELECT count(*) FROM kept") == "100"

    torn = teardown(world.project(), backend=backend, remove_volumes=True, yes=True)
    assert torn.ok, torn.to_dict()
    assert torn.backup.startswith("fresh backup ") and torn.volumes_removed

    events = world.recorder.called("event")
    kinds = [c.kwargs["event"].kind for c in events]
    assert kinds.count(EventKind.DEPLOY_SUCCEEDED) == 3
    assert EventKind.BACKUP_SUCCEEDED in kinds and EventKind.RESTORE_SUCCEEDED in kinds
    assert kinds[-1] == EventKind.TEARDOWN
    assert all(c.kwargs["env"] is not None and c.kwargs["env"].name == "prod" for c in events)
