"""Findings on the merged compose configuration and on the running containers: ports, privileges, user, no-new-privileges, capabilities, read-only root filesystem, secrets as files. The per-service checks are shared by both."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..checks import Check, Status, failed, passed, warned
from ..engine.containers import SERVICE_LABEL
from ..environment import (
    Environment,
)
from ..masking import MIN_SCRUB_LENGTH
from .model import (
    CHECK_CAPS,
    CHECK_NNP,
    CHECK_PORTS,
    CHECK_PRIVILEGED,
    CHECK_ROOTFS,
    CHECK_SECRETS,
    CHECK_USER,
    Finding,
)

#: Services meant to be reachable from the network: publishing on every interface is their
#: job. Only while HTTPS is enforced does that pass (the proxy then redirects HTTP to HTTPS).
PUBLIC_ENTRY_SERVICES = frozenset({"tls-proxy"})

#: Capabilities that amount to root on the host; adding one back is a failure.
DANGEROUS_CAPABILITIES = frozenset(
    {"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_RAWIO", "SYS_PTRACE", "NET_ADMIN"}
)


#: Capabilities worth a warning, and why. DAC_READ_SEARCH lets a process open any host file
#: by handle (the "shocker" container escape); DAC_OVERRIDE already covers what it gives
#: inside the container.
RISKY_CAPABILITIES: Mapping[str, str] = {
    "DAC_READ_SEARCH": 'open_by_handle_at lets it read host files (CVE-2014-3519, "shocker")',
}

#: Services whose image can take a secret only on its command line, and for how long. Their
#: check warns instead of passing (docs/SECURITY.md, "Secrets as files").
SECRETS_ON_ARGV: Mapping[str, str] = {
    "airflow-init": "`airflow users create` takes the admin password only as --password "
    "(Airflow 2's CLI has no file option): on the one-shot's command line while it runs",
    "superset": "`superset fab create-admin` takes the admin password only as --password: "
    "on the bootstrap's command line for the seconds it runs",
}


def image_repository(reference: str) -> str:
    """``postgres`` from ``postgres:16.10``, ``quay.io/minio/minio`` from ``...:RELEASE...``."""
    ref = reference.split("@", 1)[0]
    last_slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > last_slash:
        ref = ref[:colon]
    if ref.startswith("docker.io/"):
        ref = ref[len("docker.io/") :]
    if ref.startswith("library/"):
        ref = ref[len("library/") :]
    return ref


def is_root_user(user: str) -> bool:
    """Whether a ``user:`` / ``Config.User`` value means root ("" is the image default)."""
    name = user.strip().split(":", 1)[0]
    return name in ("", "0", "root")


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "on"}
    return bool(value)


def _has_no_new_privileges(security_opt: Iterable[str] | None) -> bool:
    for opt in security_opt or []:
        text = str(opt).replace("=", ":").strip().lower()
        if text in ("no-new-privileges", "no-new-privileges:true"):
            return True
    return False


def _port_check(
    service: str, bindings: Sequence[tuple[str, int]], env: Environment | None
) -> Check:
    open_ports = sorted({port for ip, port in bindings if ip in ("", "0.0.0.0", "::")})
    if not bindings:
        return passed(CHECK_PORTS, "publishes no port")
    if not open_ports:
        addresses = sorted({ip for ip, _port in bindings})
        return passed(CHECK_PORTS, f"published on {', '.join(addresses)} only")
    listed = ", ".join(str(p) for p in open_ports)
    if service in PUBLIC_ENTRY_SERVICES:
        mode = ((env.get("HTTPS_MODE") if env else "") or "disabled").lower()
        if mode == "enforced":
            return passed(
                CHECK_PORTS,
                f"the TLS proxy is the stack's public entry point: {listed} on all interfaces, "
                "HTTPS enforced",
            )
        return warned(
            CHECK_PORTS,
            f"the TLS proxy publishes {listed} on all interfaces while HTTPS_MODE={mode}",
            "set HTTPS_MODE=enforced, or PROXY_BIND_ADDRESS to one interface",
        )
    return failed(
        CHECK_PORTS,
        f"port{'s' if len(open_ports) > 1 else ''} {listed} published on all interfaces (0.0.0.0)",
        "set BIND_ADDRESS=127.0.0.1 (or the one interface clients use) in the env file",
    )


def _privileged_check(privileged: bool) -> Check:
    if privileged:
        return failed(
            CHECK_PRIVILEGED,
            "runs privileged: every device and capability of the host",
            "remove `privileged: true`; add back only the capabilities it needs",
        )
    return passed(CHECK_PRIVILEGED)


def _user_check(
    configured: str | None, image: str, image_user: str | None, *, running: bool = False
) -> Check:
    """``configured``: the compose ``user:`` (None when absent); ``image_user``: the image's
    Config.User (None when unknown: image absent locally and not in KNOWN_IMAGE_USERS)."""
    repo = image_repository(image)
    if configured is not None and configured.strip() and not is_root_user(configured):
        return passed(CHECK_USER, f"user {configured}")
    if configured is not None and configured.strip():
        where = "`user:` is root"
    else:
        source = ""
        if image_user is None:
            image_user = KNOWN_IMAGE_USERS.get(repo)
            source = " (from its Dockerfile; image not present locally)"
        if image_user is None:
            return Check(
                CHECK_USER,
                Status.SKIP,
                f"image {image} is not present locally; its user is unknown",
                "pull or build the image and run again",
            )
        if not is_root_user(image_user):
            return passed(CHECK_USER, f"image user {image_user}{source}")
        where = "runs as root" if running else "the image's user is root"
    reason = ROOT_REQUIRED_IMAGES.get(repo)
    if reason:
        return warned(CHECK_USER, f"{where}: {reason}", "accepted: documented in docs/SECURITY.md")
    return failed(
        CHECK_USER,
        f"{where} ({image})",
        "set `user:` to an unprivileged uid in the compose file, or a USER in the image",
    )


def _nnp_check(security_opt: Iterable[str] | None) -> Check:
    if _has_no_new_privileges(security_opt):
        return passed(CHECK_NNP)
    return failed(
        CHECK_NNP,
        "processes can gain privileges through setuid binaries",
        'add `security_opt: ["no-new-privileges:true"]`',
    )


def _caps_check(cap_drop: Iterable[str] | None, cap_add: Iterable[str] | None) -> Check:
    dropped = {str(c).upper().removeprefix("CAP_") for c in cap_drop or []}
    added = sorted({str(c).upper().removeprefix("CAP_") for c in cap_add or []})
    dangerous = sorted(set(added) & DANGEROUS_CAPABILITIES)
    if dangerous:
        return failed(
            CHECK_CAPS,
            f"adds back {', '.join(dangerous)}",
            f"remove {', '.join(dangerous)} from cap_add",
        )
    if "ALL" not in dropped:
        return failed(
            CHECK_CAPS,
            "keeps Docker's default capabilities",
            "add `cap_drop: [ALL]` and `cap_add` only what the entrypoint needs",
        )
    risky = [c for c in added if c in RISKY_CAPABILITIES]
    if risky:
        return warned(
            CHECK_CAPS,
            f"all dropped, adds back {', '.join(added)}; "
            + "; ".join(f"{c}: {RISKY_CAPABILITIES[c]}" for c in risky),
            f"remove {', '.join(risky)} from cap_add unless the image needs it",
        )
    if added:
        return passed(CHECK_CAPS, f"all dropped; adds back {', '.join(added)}")
    return passed(CHECK_CAPS, "all dropped")


def _rootfs_check(service: str, read_only: bool) -> Check:
    if read_only:
        return passed(CHECK_ROOTFS)
    reason = WRITABLE_ROOTFS_SERVICES.get(service)
    if reason:
        return warned(
            CHECK_ROOTFS,
            f"writable: {reason}",
            "accepted: documented in docs/SECURITY.md",
        )
    return failed(
        CHECK_ROOTFS,
        "the root filesystem is writable",
        "add `read_only: true` with a tmpfs for scratch paths (e.g. /tmp)",
    )


def config_findings(
    config: Mapping[str, Any],
    *,
    env: Environment | None = None,
    image_users: Mapping[str, str | None] | None = None,
) -> list[Finding]:
    """Findings for every active service of a merged compose config (``compose config`` JSON).

    ``image_users`` maps image references to their Config.User when present locally.
    """
    image_users = image_users or {}
    findings: list[Finding] = []
    for name, raw in sorted((config.get("services") or {}).items()):
        deploy = raw.get("deploy") or {}
        if deploy.get("replicas") is not None and int(deploy["replicas"]) == 0:
            continue
        bindings = [
            (str(p.get("host_ip", "")), int(p["published"]))
            for p in raw.get("ports") or []
            if isinstance(p, Mapping) and p.get("published")
        ]
        image = str(raw.get("image", ""))
        user = raw.get("user")
        checks = [
            _port_check(name, bindings, env),
            _privileged_check(_as_bool(raw.get("privileged", False))),
            _user_check(None if user is None else str(user), image, image_users.get(image)),
            _nnp_check(raw.get("security_opt")),
            _caps_check(raw.get("cap_drop"), raw.get("cap_add")),
            _rootfs_check(name, _as_bool(raw.get("read_only", False))),
        ]
        if env is not None and env.flag("SENSITIVE_AS_FILES"):
            checks.append(_secrets_check(name, raw, env))
        findings.extend(Finding(name, check, "config") for check in checks)
    return findings


def _secrets_check(name: str, raw: Mapping[str, Any], env: Environment) -> Check:
    """Staging/prod: no secret value in the service's configured environment, command or
    labels (what `docker inspect` shows); the image's file convention is used instead."""
    shown = {
        "environment": raw.get("environment") or {},
        "command": raw.get("command"),
        "entrypoint": raw.get("entrypoint"),
        "labels": raw.get("labels") or {},
    }
    text = str(shown)
    leaked = sorted(
        k
        for k, v in env.values.items()
        if env.is_secret(k) and len(v) >= MIN_SCRUB_LENGTH and v in text
    )
    if leaked:
        return failed(
            CHECK_SECRETS,
            f"the values of {', '.join(leaked)} are in its configuration (docker inspect)",
            "give it the secret as a file (compose/docker-compose.secrets-files.yaml)",
        )
    files = len(raw.get("secrets") or [])
    if name in SECRETS_ON_ARGV:
        return warned(
            CHECK_SECRETS, SECRETS_ON_ARGV[name], "no fix in the image; see docs/SECURITY.md"
        )
    return passed(CHECK_SECRETS, f"{files} secret file(s)" if files else "no secret needed")


def container_findings(
    inspected: Sequence[Mapping[str, Any]], *, env: Environment | None = None
) -> list[Finding]:
    """Findings for running containers from ``docker container inspect`` rows: what the
    engine really applied (the image's user, the actual port bindings)."""
    findings: list[Finding] = []
    for raw in inspected:
        state = raw.get("State") or {}
        if not state.get("Running"):
            continue
        config = raw.get("Config") or {}
        host = raw.get("HostConfig") or {}
        labels = config.get("Labels") or {}
        name = str(raw.get("Name", "")).lstrip("/")
        service = str(labels.get(SERVICE_LABEL) or name)
        bindings = [
            (str(b.get("HostIp", "")), int(b.get("HostPort") or 0))
            for entries in (host.get("PortBindings") or {}).values()
            for b in entries or []
            if b.get("HostPort")
        ]
        user = str(config.get("User") or "")
        checks = [
            _port_check(service, bindings, env),
            _privileged_check(bool(host.get("Privileged"))),
            _user_check(user, str(config.get("Image", "")), user, running=True),
            _nnp_check(host.get("SecurityOpt")),
            _caps_check(host.get("CapDrop"), host.get("CapAdd")),
            _rootfs_check(service, bool(host.get("ReadonlyRootfs"))),
        ]
        findings.extend(Finding(service, check, f"container {name}") for check in checks)
    return findings


#: Images that must start as root, and why (image repository without the tag). A root user
#: of these images is a warning, not a failure; their containers still drop every capability
#: they do not need (compose/docker-compose.override.prod.yaml).
ROOT_REQUIRED_IMAGES: Mapping[str, str] = {
    "postgres": "the entrypoint runs as root to chown the data directory, then drops to the "
    "postgres user with gosu",
    "quay.io/minio/minio": "the MinIO image runs as root on its root-owned /data",
    "nginx": "the nginx master binds ports 80/443 as root and runs its workers as nginx",
}

#: The default user of images that are not present locally, from their Dockerfiles, so the
#: configuration can be judged before the first pull. "" means root.
KNOWN_IMAGE_USERS: Mapping[str, str] = {
    "apache/spark": "spark",  # USER spark (uid 185) in apache/spark's Dockerfile
    "trinodb/trino": "trino",  # USER trino:trino
    "apache/airflow": "airflow",  # USER airflow (uid 50000)
    "apache/superset": "superset",
    "apache/hive": "hive",
    "lakehouse/hive": "hive",  # compose/images/hive: FROM apache/hive, no USER change
    "lakehouse/superset": "superset",  # compose/images/superset: USER superset
    "lakehouse/ingestor": "ingestor",  # compose/images/ingestor: USER ingestor
    "lakehouse/dbt-trino": "1000",  # compose/images/dbt: USER 1000:1000
    "prom/prometheus": "nobody",  # monitoring plugin: USER nobody
    "grafana/grafana": "472",  # monitoring plugin: USER grafana (uid 472)
    "postgres": "",
    "quay.io/minio/minio": "",
    "nginx": "",
}

#: Services whose root filesystem stays writable, and why (a warning, not a failure).
WRITABLE_ROOTFS_SERVICES: Mapping[str, str] = {
    "hive-metastore": "its entrypoint runs schematool and writes logs and scratch files under "
    "/opt/hive",
    "superset": "Superset writes under /app at start-up (bootstrap, gunicorn scratch)",
    "airflow-init": "the Airflow image writes airflow.cfg and webserver_config.py into "
    "AIRFLOW_HOME on first start",
    "airflow-webserver": "the Airflow image writes airflow.cfg and webserver_config.py into "
    "AIRFLOW_HOME",
    "airflow-scheduler": "the Airflow image writes airflow.cfg and logs into AIRFLOW_HOME",
}
