"""The contract of the compose stack: what every environment's merged model must satisfy."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from .stack import (
    COMPOSE_DIR,
    ONESHOTS,
    SERVICES,
    env_values,
    is_oneshot,
    memory_bytes,
    replicas,
)

# Binaries a healthcheck may call, per image repository; mirrors the verified image facts (shared/IMAGE_FACTS.md)
# (derived lakehouse/* images inherit their base image's tools).
HEALTHCHECK_BINARIES = {
    "quay.io/minio/minio": {"mc", "curl"},
    "postgres": {"pg_isready"},
    "lakehouse/hive": {"bash"},
    "apache/spark": {"curl", "wget"},
    "trinodb/trino": {"/usr/lib/trino/bin/health-check", "trino"},
    "lakehouse/superset": {"curl"},
    "apache/airflow": {"curl", "wget"},
    "lakehouse/ingestor": {"python"},
    "lakehouse/dbt-trino": {"dbt"},
    "nginx": {"wget"},
}

HEALTHY, DONE = "service_healthy", "service_completed_successfully"
# The six startup layers, edge by edge.
EXPECTED_DEPENDS_ON = {
    "minio": {},
    "metastore-db": {},
    "superset-db": {},
    "airflow-db": {},
    "minio-init": {"minio": HEALTHY},
    "hive-metastore": {"metastore-db": HEALTHY, "minio": HEALTHY, "minio-init": DONE},
    "spark-master": {"hive-metastore": HEALTHY},
    "spark-worker-1": {"spark-master": HEALTHY},
    "spark-worker-2": {"spark-master": HEALTHY},
    "trino": {"hive-metastore": HEALTHY, "minio": HEALTHY},
    "superset": {"superset-db": HEALTHY, "trino": HEALTHY},
    "airflow-init": {"airflow-db": HEALTHY},
    "airflow-webserver": {"airflow-db": HEALTHY, "airflow-init": DONE},
    "airflow-scheduler": {"airflow-db": HEALTHY, "airflow-init": DONE},
    "ingestor": {"minio": HEALTHY, "minio-init": DONE, "hive-metastore": HEALTHY},
    "dbt": {"trino": HEALTHY},
}
EXPECTED_LAYER = {
    "minio": 1,
    "minio-init": 1,
    "metastore-db": 1,
    "superset-db": 1,
    "airflow-db": 1,
    "hive-metastore": 2,
    "spark-master": 3,
    "spark-worker-1": 3,
    "spark-worker-2": 3,
    "trino": 4,
    "superset": 5,
    "airflow-init": 5,
    "airflow-webserver": 5,
    "airflow-scheduler": 5,
    "ingestor": 6,
    "dbt": 6,
}
DATABASES = ("metastore-db", "superset-db", "airflow-db")
# (service, container port) of every web UI.
WEB_UIS = {
    ("minio", 9001),
    ("spark-master", 8080),
    ("trino", 8080),
    ("superset", 8088),
    ("airflow-webserver", 8080),
    ("spark-worker-1", 8081),
    ("spark-worker-2", 8081),
}


def seconds(duration: str) -> float:
    """A compose duration ("90s", "1m30s", "1m") in seconds."""
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    assert total or duration in ("0s", "0"), f"unparsable duration {duration!r}"
    return total


def services_of(config: dict) -> dict:
    return config["services"]


def long_running(config: dict) -> dict:
    return {n: s for n, s in services_of(config).items() if not is_oneshot(s)}


def published(service: dict) -> list[dict]:
    return [p for p in service.get("ports", []) if p.get("published")]


# --------------------------------------------------------------------------- shape


def test_config_is_valid_and_has_exactly_the_16_services(merged, env):
    names = set(services_of(merged(env)))
    expected = {*SERVICES, "tls-proxy"} if env == "prod" else set(SERVICES)
    assert names == expected, f"{env}: unexpected {names ^ expected}"


def test_tls_proxy_only_in_staging_profile_and_prod(merged):
    staging_tls = services_of(merged("staging", ("tls",)))
    assert set(staging_tls) == {*SERVICES, "tls-proxy"}
    assert staging_tls["tls-proxy"].get("profiles") == ["tls"]
    prod = services_of(merged("prod"))
    assert set(prod) == {*SERVICES, "tls-proxy"}
    assert not prod["tls-proxy"].get("profiles"), "the prod proxy must always run"


def test_one_shots_are_labelled_and_never_restart(merged, env):
    services = services_of(merged(env))
    assert {n for n, s in services.items() if is_oneshot(s)} == set(ONESHOTS)
    for name in ONESHOTS:
        assert services[name]["restart"] == "no"


def test_every_one_shot_is_awaited_by_a_long_running_service(merged, env):
    # Otherwise `docker compose up --wait` fails when the job exits 0 (compose bug).
    config = merged(env)
    for job in ONESHOTS:
        waiters = [
            n
            for n, s in long_running(config).items()
            if (s.get("depends_on") or {}).get(job, {}).get("condition") == DONE
        ]
        assert waiters, f"{env}: nothing waits for {job} with {DONE}"


def test_layer_labels(merged, env):
    for name, service in services_of(merged(env)).items():
        if name == "tls-proxy":
            continue
        assert service["labels"]["io.lakehouse.layer"] == str(EXPECTED_LAYER[name]), name


def test_depends_on_graph_is_the_six_layers(merged, env):
    services = services_of(merged(env))
    for name, expected in EXPECTED_DEPENDS_ON.items():
        actual = {
            dep: spec["condition"] for dep, spec in (services[name].get("depends_on") or {}).items()
        }
        assert actual == expected, f"{env}/{name}"
        for dep in actual:  # never depend on a later layer
            assert EXPECTED_LAYER[dep] <= EXPECTED_LAYER[name], f"{name} -> {dep}"


# --------------------------------------------------------------------------- images


def test_every_image_is_pinned(merged, env):
    for name, service in services_of(merged(env)).items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{env}/{name}: {image} has no tag"
        assert tag != "latest", f"{env}/{name}: {image} uses latest"


@pytest.mark.parametrize(
    "dockerfile", sorted((COMPOSE_DIR / "images").glob("*/Dockerfile")), ids=lambda p: p.parent.name
)
def test_derived_images_start_from_pinned_bases(dockerfile):
    text = dockerfile.read_text()
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    for base in re.findall(r"^FROM (\S+)", text, re.M):
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], base)
        assert ":" in image and not image.endswith(":latest"), f"{dockerfile}: {image}"


def test_derived_images_have_build_and_image_name(merged):
    services = services_of(merged("prod"))
    for name in ("hive-metastore", "superset", "ingestor", "dbt"):
        assert services[name].get("build"), name
        assert services[name]["image"].startswith("lakehouse/"), name


# --------------------------------------------------------------------------- resources


def test_limits_and_reservations_on_every_service(merged, env):
    for name, service in services_of(merged(env)).items():
        resources = (service.get("deploy") or {}).get("resources") or {}
        limits, reservations = resources.get("limits") or {}, resources.get("reservations") or {}
        for part, values in (("limits", limits), ("reservations", reservations)):
            assert float(values.get("cpus", 0)) > 0, f"{env}/{name}: no {part}.cpus"
            assert memory_bytes(values.get("memory", 0)) > 0, f"{env}/{name}: no {part}.memory"
        assert float(reservations["cpus"]) <= float(limits["cpus"]), name
        assert memory_bytes(reservations["memory"]) <= memory_bytes(limits["memory"]), name


def test_merged_resources_come_from_the_env_file(merged, env):
    values = env_values(env)
    services = services_of(merged(env))
    prefix = {n: n.upper().replace("-", "_") for n in services}
    prefix["spark-worker-1"] = prefix["spark-worker-2"] = "SPARK_WORKER"
    for name, service in services.items():
        p, res = prefix[name], service["deploy"]["resources"]
        assert Decimal(str(res["limits"]["cpus"])) == Decimal(values[f"{p}_CPU_LIMIT"]), name
        assert memory_bytes(res["limits"]["memory"]) == memory_bytes(values[f"{p}_MEMORY_LIMIT"]), (
            name
        )
        assert Decimal(str(res["reservations"]["cpus"])) == Decimal(
            values[f"{p}_CPU_RESERVATION"]
        ), name
        assert memory_bytes(res["reservations"]["memory"]) == memory_bytes(
            values[f"{p}_MEMORY_RESERVATION"]
        ), name


# --------------------------------------------------------------------------- health


def test_healthcheck_on_every_long_running_service(merged, env):
    for name, service in long_running(merged(env)).items():
        check = service.get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), f"{env}/{name}"
        kind, *rest = check["test"]
        assert kind in ("CMD", "CMD-SHELL"), f"{env}/{name}: {kind}"
        binary = rest[0].split()[0] if kind == "CMD-SHELL" else rest[0]
        repository = service["image"].rpartition(":")[0]
        assert binary in HEALTHCHECK_BINARIES[repository], (
            f"{env}/{name}: {binary!r} is not known to exist in {repository}"
        )


def test_healthcheck_timings_follow_the_env_file(merged, env):
    values = env_values(env)
    for name, service in long_running(merged(env)).items():
        check = service["healthcheck"]
        assert seconds(check["interval"]) == seconds(values["HEALTHCHECK_INTERVAL"]), name
        assert seconds(check["timeout"]) == seconds(values["HEALTHCHECK_TIMEOUT"]), name
        assert int(check["retries"]) == int(values["HEALTHCHECK_RETRIES"]), name
        start = (
            "HIVE_METASTORE_START_PERIOD"
            if name == "hive-metastore"
            else "HEALTHCHECK_START_PERIOD"
        )
        assert seconds(check["start_period"]) == seconds(values[start]), name
    assert seconds(values["HIVE_METASTORE_START_PERIOD"]) >= 30


# --------------------------------------------------------------------------- policies


def test_restart_and_logging_follow_the_env_file(merged, env):
    values = env_values(env)
    for name, service in services_of(merged(env)).items():
        if not is_oneshot(service):
            assert service["restart"] == values["RESTART_POLICY"], f"{env}/{name}"
        logging = service["logging"]
        assert logging["driver"] == "json-file"
        assert logging["options"]["max-size"] == values["LOG_MAX_SIZE"], f"{env}/{name}"
        assert logging["options"]["max-file"] == values["LOG_MAX_FILE"], f"{env}/{name}"


def test_state_lives_in_named_volumes(merged, env):
    config = merged(env)
    declared = set(config.get("volumes", {}))
    for name in (
        "minio-data",
        "metastore-db-data",
        "superset-db-data",
        "airflow-db-data",
        "hive-warehouse",
        "spark-work",
        "superset-home",
        "airflow-logs",
        "trino-data",
        "ingestor-data",
        "dbt-target",
    ):
        assert name in declared, name
    for name, service in services_of(config).items():
        for mount in service.get("volumes", []):
            if mount["type"] == "volume":
                assert mount["source"] in declared, f"{name}: {mount['source']}"


def test_one_project_network(merged, env):
    config = merged(env)
    assert set(config["networks"]) == {"lakehouse"}
    for name, service in services_of(config).items():
        assert set(service["networks"]) == {"lakehouse"}, name


# --------------------------------------------------------------------------- ports


def test_database_ports_published_in_dev_only(merged, env):
    values = env_values(env)
    services = services_of(merged(env))
    for name in DATABASES:
        ports = published(services[name])
        if env == "dev":
            variable = name.upper().replace("-", "_") + "_PORT"
            assert [p["published"] for p in ports] == [values[variable]], name
        else:
            assert ports == [], f"{env}: {name} publishes {ports}"


def test_published_ports_bind_to_the_configured_address(merged, env):
    values = env_values(env)
    for name, service in services_of(merged(env)).items():
        expected = values["PROXY_BIND_ADDRESS"] if name == "tls-proxy" else values["BIND_ADDRESS"]
        for port in published(service):
            assert port.get("host_ip") == expected, f"{env}/{name}: {port}"


@pytest.mark.parametrize("profiles", [(), ("tls",)])
def test_only_the_proxy_listens_on_all_interfaces_outside_dev(merged, profiles):
    for env in ("staging", "prod"):
        for name, service in services_of(merged(env, profiles)).items():
            if name == "tls-proxy":
                continue
            for port in published(service):
                assert port.get("host_ip") not in (None, "", "0.0.0.0", "::"), f"{env}/{name}"


def test_prod_publishes_no_web_ui_except_through_the_proxy(merged):
    services = services_of(merged("prod"))
    for name, service in services.items():
        for port in published(service):
            assert (name, port["target"]) not in WEB_UIS, f"prod: {name} publishes {port}"
    proxied = {p["target"] for p in published(services["tls-proxy"])}
    assert {80, 443, 9001, 8080, 8086, 8088, 8089} <= proxied


# --------------------------------------------------------------------------- workers


def test_worker_count_matches_started_workers(merged, env):
    services = services_of(merged(env))
    started = sum(replicas(services[w]) for w in ("spark-worker-1", "spark-worker-2"))
    assert started == int(env_values(env)["SPARK_WORKER_COUNT"])


def test_dev_runs_one_worker(merged):
    assert env_values("dev")["SPARK_WORKER_COUNT"] == "1"
    services = services_of(merged("dev"))
    assert replicas(services["spark-worker-2"]) == 0
    assert replicas(services["spark-worker-1"]) == 1


# --------------------------------------------------------------------------- prod hardening


def test_prod_hardening_on_every_service(merged):
    for name, service in services_of(merged("prod")).items():
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("cap_drop") == ["ALL"], name


def test_prod_and_staging_turn_debug_off(merged):
    for env in ("staging", "prod"):
        services = services_of(merged(env))
        assert services["superset"]["environment"]["DEBUG"] == "false", env
    prod = services_of(merged("prod"))
    assert prod["superset"]["environment"]["SESSION_COOKIE_SECURE"] == "true"
    web = prod["airflow-webserver"]["environment"]
    assert web["AIRFLOW__WEBSERVER__COOKIE_SECURE"] == "True"
    assert web["AIRFLOW__WEBSERVER__EXPOSE_CONFIG"] == "False"
