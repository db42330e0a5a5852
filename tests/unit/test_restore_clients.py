"""A database restore stops the database's own clients (``depends_on`` it), not the whole
chain behind them: Trino and Superset keep serving while the metastore database is restored."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from lakehouse_tasks.data import restore
from lakehouse_tasks.stack import Stack


def _project() -> Any:
    healthy = {"condition": "service_healthy"}
    config = {
        "name": "p",
        "services": {
            "metastore-db": {"image": "postgres"},
            "superset-db": {"image": "postgres"},
            "minio": {"image": "minio"},
            "hive-metastore": {
                "image": "hive",
                "depends_on": {"metastore-db": healthy, "minio": healthy},
            },
            "trino": {"image": "trino", "depends_on": {"hive-metastore": healthy}},
            "superset": {
                "image": "superset",
                "depends_on": {"superset-db": healthy, "trino": healthy},
            },
        },
    }
    return SimpleNamespace(stack=Stack.from_config(config))


def test_only_the_direct_clients_of_a_restored_database_stop() -> None:
    project = _project()
    assert restore._clients(project, ["metastore-db"]) == {"hive-metastore"}
    assert restore._clients(project, ["superset-db"]) == {"superset"}
    assert restore._clients(project, ["metastore-db", "superset-db"]) == {
        "hive-metastore",
        "superset",
    }
    assert restore._clients(project, []) == set()
