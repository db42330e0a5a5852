"""The translation of the merged compose config into a swarm stack file (no Docker needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse_tasks.backends import backend_for
from lakehouse_tasks.backends.swarm.policies import SwarmOptions, restart_policy
from lakehouse_tasks.backends.swarm.secrets import secret_name
from lakehouse_tasks.backends.swarm.translate import StackFile, build_stack_file
from lakehouse_tasks.errors import ConfigError

CONFIG: dict[str, Any] = {
    "name": "lakehouse-prod",
    "x-anchor": {"restart": "no"},
    "networks": {"lakehouse": {"name": "lakehouse-prod_lakehouse", "ipam": {}}},
    "volumes": {"db-data": {"name": "lakehouse-prod_db-data"}, "unused": {}},
    "services": {
        "metastore-db": {
            "image": "postgres:16",
            "networks": {"lakehouse": None},
            "restart": "unless-stopped",
            "container_name": "db",
            "pull_policy": "never",
            "security_opt": ["no-new-privileges:true"],
            "depends_on": {},
            "command": None,
            "environment": {"POSTGRES_PASSWORD": "pa$$word-long-and-strong", "POSTGRES_DB": "m"},
            "labels": {"io.lakehouse.layer": "1"},
            "ports": [{"host_ip": "127.0.0.1", "target": 5432, "published": "5432"}],
            "volumes": [
                {
                    "type": "volume",
                    "source": "db-data",
                    "target": "/var/lib/postgresql/data",
                    "volume": {},
                },
                {
                    "type": "bind",
                    "source": "/srv/x",
                    "target": "/x",
                    "bind": {"create_host_path": True},
                },
            ],
            "healthcheck": {
                "test": ["CMD", "pg_isready"],
                "interval": "5s",
                "start_interval": "1s",
                "retries": 3,
            },
            "deploy": {
                "resources": {
                    "limits": {"cpus": 0.5, "memory": "536870912"},
                    "reservations": {"cpus": 0.25},
                }
            },
        },
        "init": {
            "image": "busybox",
            "restart": "always",
            "labels": {"io.lakehouse.layer": "1", "io.lakehouse.oneshot": "true"},
            "depends_on": {"metastore-db": {"condition": "service_healthy"}},
        },
        "trino": {
            "image": "trino",
            "restart": "on-failure:3",
            "environment": {"TRINO_SECRET_KEY": "x" * 20},
            "labels": {"io.lakehouse.layer": "4"},
            "profiles": ["query"],
            "build": {"context": "."},
        },
    },
}


def _build(env: str = "prod", **options: Any) -> StackFile:
    return build_stack_file(
        CONFIG,
        environment=env,
        stack_name="lakehouse-prod",
        options=SwarmOptions(**options),
        is_secret=lambda name: "PASSWORD" in name or "KEY" in name,
    )


@pytest.mark.parametrize(
    ("restart", "oneshot", "expected"),
    [
        ("no", False, {"condition": "none"}),
        ("unless-stopped", False, {"condition": "any", "delay": "5s"}),
        ("always", False, {"condition": "any", "delay": "5s"}),
        ("on-failure", False, {"condition": "on-failure", "delay": "5s"}),
        ("on-failure:3", False, {"condition": "on-failure", "delay": "5s", "max_attempts": 3}),
        ("always", True, {"condition": "none"}),
    ],
)
def test_restart_policies_translate(restart: str, oneshot: bool, expected: dict[str, Any]) -> None:
    assert restart_policy(restart, oneshot=oneshot) == expected


def test_unknown_restart_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no swarm equivalent"):
        restart_policy("sometimes", oneshot=False)


def test_unsupported_keys_are_removed_and_named() -> None:
    stack = _build()
    db = stack.document["services"]["metastore-db"]
    for key in (
        "restart",
        "container_name",
        "pull_policy",
        "depends_on",
        "security_opt",
        "command",
    ):
        assert key not in db
    assert "build" not in stack.document["services"]["trino"]
    assert "profiles" not in stack.document["services"]["trino"]
    assert any("security_opt dropped" in note for note in stack.notes)
    assert "start_interval" not in db["healthcheck"]
    assert db["volumes"][1] == {"type": "bind", "source": "/srv/x", "target": "/x"}
    assert set(stack.document) == {"version", "services", "networks", "volumes"}
    assert stack.document["networks"] == {"lakehouse": {"driver": "overlay", "attachable": True}}
    assert stack.document["volumes"] == {"db-data": {"name": "lakehouse-prod_db-data"}}


def test_ports_lose_host_ip_with_a_note() -> None:
    stack = _build()
    assert stack.document["services"]["metastore-db"]["ports"] == [
        {"target": 5432, "published": 5432, "protocol": "tcp", "mode": "ingress"}
    ]
    assert any("every interface" in note for note in stack.notes)


def test_update_and_rollback_config_by_kind_of_service() -> None:
    services = _build(monitor="10s").document["services"]
    db, init, trino = services["metastore-db"], services["init"], services["trino"]
    assert db["deploy"]["update_config"] == {
        "parallelism": 1,
        "delay": "0s",
        "order": "stop-first",
        "failure_action": "rollback",
        "monitor": "10s",
        "max_failure_ratio": 0,
    }
    assert db["deploy"]["rollback_config"]["order"] == "stop-first"
    assert trino["deploy"]["update_config"]["order"] == "start-first"
    assert trino["deploy"]["rollback_config"]["order"] == "start-first"
    assert init["deploy"]["update_config"]["order"] == "stop-first"
    assert init["deploy"]["restart_policy"] == {"condition": "none"}
    assert trino["deploy"]["restart_policy"]["max_attempts"] == 3


def test_stateful_services_are_pinned_to_storage_nodes() -> None:
    services = _build().document["services"]
    assert services["metastore-db"]["deploy"]["placement"] == {
        "constraints": ["node.labels.lakehouse.storage == true"]
    }
    assert "placement" not in services["trino"]["deploy"]
    assert services["metastore-db"]["deploy"]["labels"]["io.lakehouse.stateful"] == "true"


def test_reservations_are_dropped_only_when_asked() -> None:
    kept = _build().document["services"]["metastore-db"]["deploy"]["resources"]
    assert kept == {
        "limits": {"cpus": "0.5", "memory": "536870912"},
        "reservations": {"cpus": "0.25"},
    }
    dropped = _build(reservations=False).document["services"]["metastore-db"]["deploy"]
    assert "reservations" not in dropped["resources"]


def test_prod_credentials_become_secret_files_where_the_image_reads_them() -> None:
    stack = _build(secrets=True)
    db = stack.document["services"]["metastore-db"]
    assert "POSTGRES_PASSWORD" not in db["environment"]
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    (ref,) = stack.secrets
    assert ref.value == "pa$word-long-and-strong"  # compose's $$ escape undone
    assert ref.name.startswith("lakehouse-prod_metastore-db_postgres_password_")
    assert db["secrets"] == [
        {
            "source": ref.name,
            "target": "postgres_password",
            "uid": "999",
            "gid": "999",
            "mode": 0o400,
        }
    ]
    assert stack.document["secrets"] == {ref.name: {"external": True, "name": ref.name}}
    assert "pa$word" not in stack.text() and "pa$$word" not in stack.text()
    # Trino's image reads no *_FILE variable: its credential stays in the environment.
    assert "TRINO_SECRET_KEY" in stack.document["services"]["trino"]["environment"]


def test_secret_names_change_with_the_value() -> None:
    a = secret_name("s", "db", "POSTGRES_PASSWORD", "one")
    b = secret_name("s", "db", "POSTGRES_PASSWORD", "two")
    assert a != b and len(a) <= 63
    assert len(secret_name("x" * 60, "db", "POSTGRES_PASSWORD", "v")) <= 63


def test_without_secrets_option_the_environment_is_kept() -> None:
    stack = _build(secrets=False)
    assert stack.secrets == ()
    assert "POSTGRES_PASSWORD" in stack.document["services"]["metastore-db"]["environment"]


def test_subset_of_services_and_unknown_service() -> None:
    stack = build_stack_file(
        CONFIG, environment="prod", stack_name="s", options=SwarmOptions(), services=["trino"]
    )
    assert stack.services == ["trino"]
    assert "volumes" not in stack.document
    with pytest.raises(ConfigError, match="Unknown service"):
        build_stack_file(
            CONFIG,
            environment="prod",
            stack_name="s",
            options=SwarmOptions(),
            services=["nope"],
        )


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, "", "compose"),
        (None, "swarm", "swarm"),
        ("compose", "swarm", "compose"),
        ("SWARM", "", "swarm"),
    ],
)
def test_target_resolution(
    flag: str | None, env: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TARGET", env)
    assert backend_for(flag).name == expected


def test_unknown_target_is_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOY_TARGET", raising=False)
    with pytest.raises(ConfigError) as caught:
        backend_for("k8s")
    assert caught.value.exit_code == 2


def test_compose_file_secrets_become_swarm_secrets_with_the_same_targets(tmp_path: Path) -> None:
    """Staging and prod give services their secrets as compose file secrets: on swarm the
    same files become (external, value-hashed) swarm secrets at the same /run/secrets path."""
    (tmp_path / "MINIO_ROOT_PASSWORD").write_text("s3cr3t-value")
    config = {
        "name": "p",
        "services": {
            "minio": {
                "image": "minio",
                "environment": {"MINIO_ROOT_PASSWORD_FILE": "/run/secrets/minio_root_password"},
                "secrets": [
                    {"source": "minio_root_password", "target": "/run/secrets/minio_root_password"}
                ],
                "group_add": ["1000"],
                "labels": {"io.lakehouse.layer": "1"},
            }
        },
        "secrets": {"minio_root_password": {"file": str(tmp_path / "MINIO_ROOT_PASSWORD")}},
    }
    stack = build_stack_file(
        config, environment="staging", stack_name="s", options=SwarmOptions(secrets=False)
    )
    (ref,) = stack.secrets
    assert ref.value == "s3cr3t-value" and ref.service == "minio"
    minio = stack.document["services"]["minio"]
    assert minio["secrets"] == [
        {"source": ref.name, "target": "minio_root_password", "uid": "0", "gid": "0", "mode": 0o444}
    ]
    assert minio["environment"] == {"MINIO_ROOT_PASSWORD_FILE": "/run/secrets/minio_root_password"}
    assert stack.document["secrets"] == {ref.name: {"external": True, "name": ref.name}}
    assert "s3cr3t-value" not in stack.text()


def test_a_missing_secret_file_is_one_sentence(tmp_path: Path) -> None:
    config = {
        "services": {"minio": {"image": "minio", "secrets": ["x"], "labels": {}}},
        "secrets": {"x": {"file": str(tmp_path / "absent")}},
    }
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        build_stack_file(config, environment="prod", stack_name="s", options=SwarmOptions())
