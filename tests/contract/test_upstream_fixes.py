"""What the check of the upstream images' sources found, held as contracts on the merged models.

One test (or a small group) per finding of issue 15; each fails on the configuration that had
the problem. The facts about the images come from shared/UPSTREAM_CHECK.md and IMAGE_FACTS.md:
they are the reason for every expectation written here.
"""

from __future__ import annotations

import re

import pytest

from .stack import COMPOSE_DIR, ENVIRONMENTS, REPO, env_values, memory_bytes, variables_schema

SPARK_SERVICES = ("spark-master", "spark-worker-1", "spark-worker-2")
SPARK_WORKERS = ("spark-worker-1", "spark-worker-2")
# HIVE-26537 removed get_table & co. from the metastore in 4.0.1; Spark 3.5's built-in Hive
# 2.3.9 client needs them. These releases still serve them.
HMS_RELEASES_SERVING_GET_TABLE = {"3.1.3", "4.0.0"}
# A path that exists in apache/spark 3.5 and is owned by spark (uid 185).
SPARK_WORK_DIR = "/opt/spark/work-dir"


def services(config: dict) -> dict:
    return config["services"]


def volume_targets(service: dict) -> dict[str, str]:
    """target -> named volume of a service's volume mounts."""
    return {
        v["target"]: v["source"] for v in service.get("volumes", []) if v.get("type") == "volume"
    }


def _sized(value: str) -> int:
    text = value.strip().lower()
    match = re.fullmatch(r"(\d+)([kmg]?)", text)
    assert match, f"not a size: {value!r}"
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2)]


# --------------------------------------------------------------------------- 1. metastore


def _hive_base_version() -> str:
    text = (COMPOSE_DIR / "images" / "hive" / "Dockerfile").read_text()
    match = re.search(r"^ARG HIVE_BASE_IMAGE=apache/hive:(\S+)$", text, re.M)
    assert match, "compose/images/hive/Dockerfile must name its apache/hive base with a tag"
    return match.group(1)


def _spark_defaults() -> dict[str, str]:
    conf = {}
    for line in (COMPOSE_DIR / "config" / "spark" / "spark-defaults.conf").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            conf[key] = value.strip()
    return conf


def test_the_metastore_serves_the_calls_of_sparks_hive_client(merged, env):
    config = merged(env)
    spark_image = services(config)["spark-master"]["image"]
    assert re.fullmatch(r"apache/spark:3\.5\.\d+", spark_image), spark_image
    conf = _spark_defaults()
    assert conf["spark.sql.catalogImplementation"] == "hive"
    # Either Spark brings a client matching the metastore, or the metastore still serves
    # the built-in 2.3.9 client's calls.
    if "spark.sql.hive.metastore.version" not in conf:
        assert _hive_base_version() in HMS_RELEASES_SERVING_GET_TABLE, (
            f"apache/hive:{_hive_base_version()} no longer serves get_table (HIVE-26537), "
            "which Spark 3.5's built-in Hive 2.3.9 client calls for every table lookup"
        )
    hive_image = services(config)["hive-metastore"]["image"]
    assert hive_image.startswith(f"lakehouse/hive:{_hive_base_version()}-"), (
        f"{env}: the image tag {hive_image} must name the apache/hive release it is built on"
    )


def test_the_metastore_image_needs_no_download_and_checks_its_inputs():
    hive = COMPOSE_DIR / "images" / "hive"
    dockerfile = hive.joinpath("Dockerfile").read_text()
    assert "sha256sum --check --strict inputs.sha256" in dockerfile
    assert not re.search(r"\b(curl|wget|ADD\s+https?://)", dockerfile)
    sums = {
        line.split()[1]: line.split()[0]
        for line in hive.joinpath("inputs.sha256").read_text().splitlines()
        if line.strip()
    }
    wanted = [
        line.strip()
        for line in hive.joinpath("inputs.maven").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert wanted, "inputs.maven lists no input"
    for coordinates in wanted:
        _, name, version = coordinates.split(":")
        digest = sums.get(f"{name}-{version}.jar", "")
        assert re.fullmatch(r"[0-9a-f]{64}", digest), (
            f"{coordinates} has no sha256 in inputs.sha256"
        )


# --------------------------------------------------------------------------- 2. worker dirs


@pytest.mark.parametrize("worker", SPARK_WORKERS)
def test_spark_workers_work_dir_is_on_a_volume_spark_owns(merged, env, worker):
    service = services(merged(env))[worker]
    targets = volume_targets(service)
    assert "/opt/spark/work" not in targets, "/opt/spark/work does not exist in apache/spark"
    assert SPARK_WORK_DIR in targets, f"{env}/{worker}: no volume on {SPARK_WORK_DIR}"
    work_dir = service["environment"]["SPARK_WORKER_DIR"]
    assert work_dir.startswith(SPARK_WORK_DIR + "/"), (
        f"{env}/{worker}: SPARK_WORKER_DIR={work_dir} is not on the {SPARK_WORK_DIR} volume"
    )


# --------------------------------------------------------------------------- 3. Trino proxy


def _nginx_server_blocks(text: str) -> list[str]:
    """The text of every `server { ... }` block (braces balanced)."""
    blocks, depth, start = [], 0, None
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    for match in re.finditer(r"server\s*\{|\{|\}", code):
        token = match.group(0)
        if token.startswith("server") and start is None:
            start, depth = match.start(), 1
        elif token == "{" and start is not None:
            depth += 1
        elif token == "}" and start is not None:
            depth -= 1
            if depth == 0:
                blocks.append(code[start : match.end()])
                start = None
    return blocks


def test_trino_behind_the_proxy_gets_no_forwarded_headers():
    conf = (COMPOSE_DIR / "config" / "tls-proxy" / "nginx.conf").read_text()
    (trino,) = [b for b in _nginx_server_blocks(conf) if "proxy_pass http://trino:" in b]
    cleared = set(re.findall(r'proxy_set_header\s+(\S+)\s+""\s*;', trino))
    assert {
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Forwarded-Port",
        "X-Forwarded-Prefix",
        "Forwarded",
    } <= cleared, (
        "Trino answers 406 to X-Forwarded-*/Forwarded unless http-server.process-forwarded is set"
    )
    # A proxy_set_header in the block replaces every inherited one: the others must be restated.
    declared = set(re.findall(r"proxy_set_header\s+(\S+)\s+\$", trino))
    assert {"Host", "Upgrade", "Connection"} <= declared
    # The other UIs keep the forwarded headers (Superset/Airflow trust them with ProxyFix).
    http = conf[conf.index("http {") :]
    assert "proxy_set_header X-Forwarded-Proto https;" in http


def test_no_trino_process_forwarded_half_setting(merged, env):
    # Clearing the headers and also telling Trino to trust them would be contradictory.
    text = str(services(merged(env))["trino"].get("environment", {}))
    assert "process-forwarded" not in text


# --------------------------------------------------------------------------- 4. metastore heap


def test_metastore_heap_is_set_below_its_memory_limit(merged, env):
    service = services(merged(env))["hive-metastore"]
    options = service["environment"]["SERVICE_OPTS"].split()
    heaps = [o[len("-Xmx") :] for o in options if o.startswith("-Xmx")]
    assert heaps, f"{env}: no -Xmx in SERVICE_OPTS: the image's entrypoint forces -Xmx1G"
    # The entrypoint puts -Xmx1G before SERVICE_OPTS; the last -Xmx wins.
    assert options[-1].startswith("-Xmx"), f"{env}: -Xmx must be the last of SERVICE_OPTS"
    heap = _sized(heaps[-1])
    limit = memory_bytes(service["deploy"]["resources"]["limits"]["memory"])
    assert heap * 4 <= limit * 3, f"{env}: heap {heaps[-1]} is more than 75% of the limit"
    assert limit - heap >= 256 * 1024**2, f"{env}: less than 256M left for metaspace and threads"


# --------------------------------------------------------------------------- 6. scratch space


@pytest.mark.parametrize("name", (*SPARK_SERVICES, "trino"))
def test_tmp_is_exec_and_sized_wherever_it_is_a_tmpfs(merged, env, name):
    service = services(merged(env))[name]
    tmpfs = [t for t in service.get("tmpfs", []) if t.split(":", 1)[0] == "/tmp"]
    if service.get("read_only"):
        assert tmpfs, f"{env}/{name}: read-only root without a /tmp tmpfs"
    for entry in tmpfs:
        options = entry.split(":", 1)[1].split(",") if ":" in entry else []
        assert "exec" in options, (
            f"{env}/{name}: {entry} is noexec (compose default): snappy-java cannot load"
        )
        assert any(o.startswith("size=") for o in options), f"{env}/{name}: {entry} has no size"


@pytest.mark.parametrize("name", SPARK_SERVICES)
def test_spark_local_dirs_are_on_the_work_volume(merged, env, name):
    service = services(merged(env))[name]
    local = service["environment"].get("SPARK_LOCAL_DIRS", "")
    assert local, f"{env}/{name}: SPARK_LOCAL_DIRS unset: shuffle spill would go to /tmp"
    assert any(local.startswith(t + "/") for t in volume_targets(service)), (
        f"{env}/{name}: SPARK_LOCAL_DIRS={local} is not on a volume"
    )


def test_tmp_sizes_are_declared_variables():
    schema = variables_schema()
    for name in ("SPARK_TMP_SIZE", "TRINO_TMP_SIZE"):
        assert schema[name]["type"] == "size"
        assert _sized(env_values("prod")[name]) > 0


# --------------------------------------------------------------------------- 7. secrets on argv


def _secret_names() -> set[str]:
    return {n for n, spec in variables_schema().items() if spec["type"] == "secret"}


_REFERENCE = re.compile(r"\$\$\{?([A-Z][A-Z0-9_]*)\}?")


def _shell_texts(service: dict) -> list[str]:
    texts = []
    for key in ("entrypoint", "command"):
        value = service.get(key) or []
        texts += [value] if isinstance(value, str) else [str(v) for v in value]
    return texts


def test_secrets_on_a_command_line_are_option_values_quoted_with_equals(merged, env):
    """`--password="$X"`: a value starting with `-` then cannot be read as a flag.

    Assignments (`X="$(cat ...)"`, `export MC_HOST_...=`, `VAR=... command`) do not put the
    value on a command line; everything else that mentions a secret must be `--opt="$X"`.
    """
    secrets = _secret_names()
    checked = 0
    for name, service in services(merged(env)).items():
        for text in _shell_texts(service):
            for line in text.splitlines():
                for match in _REFERENCE.finditer(line):
                    if match.group(1) not in secrets:
                        continue
                    checked += 1
                    before = line[: match.start()]
                    stripped = line.strip()
                    assignment = re.match(
                        r"^(if \[.*\]; then )?(export )?[A-Za-z_][A-Za-z0-9_]*=", stripped
                    )
                    if assignment or re.search(r"\b[A-Z_]+=\"$", before):
                        continue
                    assert re.search(r"--[a-z-]+=\"$", before), (
                        f'{env}/{name}: {match.group(0)} on a command line, not as --opt="$X": '
                        f"{stripped}"
                    )
    assert checked >= 4, "the init jobs' credentials were not found: the test reads nothing"


def test_minio_init_gives_mc_no_credentials_as_arguments(merged, env):
    script = "\n".join(_shell_texts(services(merged(env))["minio-init"]))
    assert "mc alias set" not in script
    assert 'export MC_HOST_lakehouse="http://' in script


def test_generated_secrets_never_look_like_options():
    from lakehouse_tasks.secretgen import new_secret

    for name in ("MINIO_ROOT_PASSWORD", "AIRFLOW_FERNET_KEY") * 400:
        value = new_secret(name)
        assert value[0].isalnum(), value[:1]
        assert len(value) >= 43


# --------------------------------------------------------------------------- 8. doubtful list


def test_dbt_core_is_pinned_with_dbt_trino():
    text = (COMPOSE_DIR / "images" / "dbt" / "Dockerfile").read_text()
    assert re.search(r"\bdbt-trino==1\.10\.\d+\b", text)
    assert re.search(r"\bdbt-core==1\.10\.\d+\b", text), "dbt-core would resolve to the newest"


def test_log_level_is_set_only_on_services_that_read_it(merged, env):
    # Hive, Spark, Trino and dbt configure logging with their own files/variables.
    ignoring = ("hive-metastore", *SPARK_SERVICES, "trino", "dbt")
    for name in ignoring:
        environment = services(merged(env))[name].get("environment") or {}
        assert "LOG_LEVEL" not in environment, f"{env}/{name}: LOG_LEVEL is a no-op there"
    superset = services(merged(env))["superset"].get("environment") or {}
    assert "SUPERSET_LOG_LEVEL" not in superset
    assert (
        'os.environ.get("LOG_LEVEL"'
        in (COMPOSE_DIR / "config" / "superset" / "superset_config.py").read_text()
    )


def test_dev_airflow_webserver_workers_fit_its_memory(merged):
    service = services(merged("dev"))["airflow-webserver"]
    workers = int(service["environment"].get("AIRFLOW__WEBSERVER__WORKERS", "4"))
    limit = memory_bytes(service["deploy"]["resources"]["limits"]["memory"])
    # about 0.25 GB per gunicorn worker plus the arbiter and the scheduler-less app
    assert (workers + 1) * 256 * 1024**2 <= limit, f"{workers} workers in {limit} bytes"


def test_dev_superset_runs_one_worker(merged):
    service = services(merged("dev"))["superset"]
    assert service["environment"]["SERVER_WORKER_AMOUNT"] == "1"


@pytest.mark.parametrize("env_name", [e for e in ENVIRONMENTS])
def test_tls_proxy_runs_the_stable_nginx_line(env_name):
    image = env_values(env_name)["TLS_PROXY_IMAGE"]
    assert re.fullmatch(r"nginx:1\.28\.\d+-alpine", image), image
    for name in ("docker-compose.override.staging.yaml", "docker-compose.override.prod.yaml"):
        assert "nginx:1.28." in (COMPOSE_DIR / name).read_text()


def test_checksummed_inputs_are_not_committed():
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "compose/images/*/inputs/" in ignored


# --------------------------------------------------------------------------- 5. proxy TLS key


def test_prod_proxy_master_may_open_an_operator_owned_private_key(merged):
    """The security check wants the key 0600 and owned by the operator; the nginx master is
    root with every capability dropped, so it needs DAC_OVERRIDE to open it (proved with the
    real nginx in tests/engine/test_tls_proxy_nginx.py)."""
    proxy = services(merged("prod"))["tls-proxy"]
    assert proxy["cap_drop"] == ["ALL"]
    assert "DAC_OVERRIDE" in proxy["cap_add"]
    assert "DAC_READ_SEARCH" not in proxy["cap_add"], "open_by_handle_at: the shocker escape"
    # What DAC_OVERRIDE adds beyond reading is writing: nothing may be writable.
    assert proxy["read_only"] is True
    binds = [v for v in proxy["volumes"] if v["type"] == "bind"]
    assert binds and all(v.get("read_only") for v in binds)
    conf = (COMPOSE_DIR / "config" / "tls-proxy" / "nginx.conf").read_text()
    key_path = re.search(r"ssl_certificate_key\s+(\S+);", conf).group(1)
    assert key_path in {v["target"] for v in binds}, "the key nginx loads is not the mounted one"
