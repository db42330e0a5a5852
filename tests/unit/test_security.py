"""Security findings on the merged configurations of dev and prod (offline: compose config)."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import pytest

from lakehouse_tasks.certificates import certificate_expiry
from lakehouse_tasks.checks import Status
from lakehouse_tasks.environment import PLACEHOLDER, read_env_file
from lakehouse_tasks.project import open_project
from lakehouse_tasks.schema import load_schema
from lakehouse_tasks.security import (
    CHECK_CAPS,
    CHECK_NNP,
    CHECK_PORTS,
    CHECK_ROOTFS,
    CHECK_SECRETS,
    CHECK_USER,
    Finding,
    config_findings,
    container_findings,
    credential_findings,
    file_findings,
    image_repository,
    tls_findings,
)
from tests.conftest import self_signed_cert

REPO = Path(__file__).resolve().parents[2]

#: Findings of prod's defaults that fail today, each with the fix that belongs to another
#: file. When one is fixed this test fails: remove it here (and from docs/SECURITY.md).
KNOWN_OPEN_PROD_FAILURES: set[tuple[str, str]] = set()


def self_signed(tmp: Path, days: int) -> tuple[Path, Path]:
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    self_signed_cert(cert, key, days=days)
    key.chmod(0o600)
    return cert, key


def prod_env_file(tmp: Path, *, days: int = 365, mode: int = 0o600) -> Path:
    """Strong generated secrets for every placeholder of prod plus a fresh certificate."""
    schema = load_schema(REPO / "env" / "variables.yaml")
    lines = []
    for key, value in read_env_file(REPO / "env" / "prod.env").items():
        if PLACEHOLDER in value:
            strong = secrets.token_urlsafe(32)
            lines.append(f"{key}={strong if schema.is_secret(key) else 'ops-' + strong[:8]}")
    cert, key_file = self_signed(tmp, days)
    lines += [f"TLS_CERT_FILE={cert}", f"TLS_KEY_FILE={key_file}"]
    path = tmp / "prod.secrets.env"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(mode)
    return path


def statuses(findings: list[Finding]) -> dict[tuple[str, str], Status]:
    return {(f.group, f.check.name): f.status for f in findings}


@pytest.fixture(scope="module")
def prod_findings(tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    tmp = tmp_path_factory.mktemp("prod")
    project = open_project("prod", env_files=[str(prod_env_file(tmp))], strict=True)
    env = project.env
    return (
        config_findings(project.compose.config(), env=env)
        + credential_findings(env)
        + file_findings(env)
        + tls_findings(env)
    )


@pytest.fixture(scope="module")
def dev_findings() -> list[Finding]:
    project = open_project("dev", strict=False, env_files=[])
    env = project.env
    return (
        config_findings(project.compose.config(), env=env)
        + credential_findings(env)
        + file_findings(env)
        + tls_findings(env)
    )


def test_prod_defaults_pass_except_known_open_findings(prod_findings: list[Finding]) -> None:
    failing = {(f.group, f.check.name) for f in prod_findings if f.status is Status.FAIL}
    assert failing == KNOWN_OPEN_PROD_FAILURES


def test_prod_warnings_are_only_documented_image_needs(prod_findings: list[Finding]) -> None:
    warned = {(f.group, f.check.name) for f in prod_findings if f.status is Status.WARN}
    root_needed = {"metastore-db", "superset-db", "airflow-db", "minio", "minio-init", "tls-proxy"}
    writable = {
        "hive-metastore",
        "superset",
        "airflow-init",
        "airflow-webserver",
        "airflow-scheduler",
    }
    # The two images whose CLI takes an admin password only as an argument (docs/SECURITY.md).
    argv_secrets = {("airflow-init", CHECK_SECRETS), ("superset", CHECK_SECRETS)}
    assert warned == (
        {(s, CHECK_USER) for s in root_needed}
        | {(s, CHECK_ROOTFS) for s in writable}
        | argv_secrets
    )


def test_prod_ports_tls_and_credentials_pass(prod_findings: list[Finding]) -> None:
    found = statuses(prod_findings)
    assert found[("tls-proxy", CHECK_PORTS)] is Status.PASS  # the designed entry point
    for service in ("minio", "spark-master", "ingestor"):
        assert found[(service, CHECK_PORTS)] is Status.PASS  # 127.0.0.1 only
    assert found[("tls", "HTTPS enforced")] is Status.PASS
    assert found[("tls", "certificate valid")] is Status.PASS
    for name in ("no placeholders", "no default credentials", "strong secrets"):
        assert found[("credentials", name)] is Status.PASS
    assert found[("files", "env file prod.secrets.env private")] is Status.PASS


def test_dev_findings_show_as_expected(dev_findings: list[Finding]) -> None:
    found = statuses(dev_findings)
    assert found[("minio", CHECK_PORTS)] is Status.FAIL  # BIND_ADDRESS=0.0.0.0
    assert found[("minio", CHECK_NNP)] is Status.FAIL
    assert found[("trino", CHECK_CAPS)] is Status.FAIL
    assert found[("trino", CHECK_ROOTFS)] is Status.FAIL
    assert found[("credentials", "no default credentials")] is Status.WARN  # dev only
    assert found[("tls", "HTTPS enforced")] is Status.WARN
    assert "spark-worker-2" not in {f.group for f in dev_findings}  # replicas: 0 in dev


def test_credential_findings_name_variables_never_values() -> None:
    env = open_project("dev", strict=False).env
    findings = credential_findings(env) + file_findings(env) + tls_findings(env)
    text = " ".join(str(f.to_dict()) for f in findings)
    assert "MINIO_ROOT_PASSWORD" in text  # dev's minio123 is a well-known default
    assert not [value for value in env.secret_values if value in text]


def test_weak_prod_secret_and_loose_file_fail(tmp_path: Path) -> None:
    path = prod_env_file(tmp_path, mode=0o644)
    with path.open("a") as fh:
        fh.write("MINIO_ROOT_PASSWORD=minio123\n")
    env = open_project("prod", env_files=[str(path)], strict=False).env
    found = statuses(credential_findings(env) + file_findings(env))
    assert found[("credentials", "no default credentials")] is Status.FAIL
    assert found[("files", "env file prod.secrets.env private")] is Status.FAIL


def test_certificate_expiry_and_near_expiry(tmp_path: Path) -> None:
    cert, _key = self_signed(tmp_path, 10)
    expiry = certificate_expiry(cert)
    now = dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=9) < expiry - now <= dt.timedelta(days=10, minutes=1)
    (tmp_path / "env").mkdir()
    path = prod_env_file(tmp_path / "env", days=10)
    env = open_project("prod", env_files=[str(path)], strict=False).env
    (finding,) = [f for f in tls_findings(env) if f.check.name == "certificate valid"]
    assert finding.status is Status.WARN and "expires in" in finding.check.detail
    later = now + dt.timedelta(days=30)
    (finding,) = [f for f in tls_findings(env, now=later) if f.check.name == "certificate valid"]
    assert finding.status is Status.FAIL and "expired" in finding.check.detail


def test_running_container_root_and_writable_rootfs() -> None:
    row = {
        "Name": "/lht-x-minio-1",
        "State": {"Running": True},
        "Config": {
            "User": "",
            "Image": "lakehouse-rehearsal/busybox:rehearsal",
            "Labels": {"com.docker.compose.service": "minio"},
        },
        "HostConfig": {
            "Privileged": True,
            "ReadonlyRootfs": False,
            "CapDrop": None,
            "SecurityOpt": None,
            "PortBindings": {"9000/tcp": [{"HostIp": "", "HostPort": "9000"}]},
        },
    }
    found = statuses(container_findings([row]))
    assert found[("minio", CHECK_USER)] is Status.FAIL
    assert found[("minio", CHECK_ROOTFS)] is Status.FAIL
    assert found[("minio", "not privileged")] is Status.FAIL
    assert found[("minio", CHECK_PORTS)] is Status.FAIL


def test_image_repository() -> None:
    assert image_repository("postgres:16.10") == "postgres"
    assert image_repository("quay.io/minio/minio:RELEASE.2025") == "quay.io/minio/minio"
    assert image_repository("localhost:5000/x/y:1") == "localhost:5000/x/y"
    assert image_repository("docker.io/library/nginx:1.27@sha256:abc") == "nginx"


def test_staging_and_prod_report_a_secret_left_in_a_container_environment() -> None:
    env = open_project("prod", strict=False, env_files=[]).env
    secret = "Zq" + "9" * 30
    env = type(env)(**{**env.__dict__, "values": {**env.values, "MINIO_ROOT_PASSWORD": secret}})
    config = {
        "services": {
            "minio": {"image": "m", "environment": {"MINIO_ROOT_PASSWORD": secret}},
            "trino": {
                "image": "t",
                "secrets": [{"source": "x"}],
                "environment": {"AWS_SECRET_ACCESS_KEY_FILE": "/run/secrets/x"},
            },
        }
    }
    found = {(f.group, f.check.name): f.check for f in config_findings(config, env=env)}
    assert found[("minio", CHECK_SECRETS)].status is Status.FAIL
    assert "MINIO_ROOT_PASSWORD" in found[("minio", CHECK_SECRETS)].detail
    assert secret not in found[("minio", CHECK_SECRETS)].detail
    assert found[("trino", CHECK_SECRETS)].status is Status.PASS
