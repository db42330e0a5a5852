"""``invoke security``: a report on the merged configuration and the running containers, in
the spirit of the CIS Docker Benchmark (section 5, container runtime), plus the environment's
credentials, secret files and TLS.

Every finding is a :class:`~lakehouse_tasks.checks.Check` (pass / warn / fail / skip with a
one-line hint) grouped by service (or ``credentials``, ``files``, ``tls``). The checks are
plain functions on data (the compose config as a mapping, ``docker inspect`` rows, the
:class:`~lakehouse_tasks.environment.Environment`); :func:`security_report` gathers that data
in a fixed number of docker calls. docs/SECURITY.md explains each check and each accepted
exception below.

No finding ever contains a secret's value: credential findings name the variable only.
"""

from __future__ import annotations

import datetime as _dt
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .certificates import certificate_expiry
from .checks import Check, Status, failed, passed, warned, worst
from .engine.containers import inspect_containers, project_containers
from .engine.images import local_image_users
from .environment import (
    MIN_PROD_SECRET_LENGTH,
    NON_DEV_ENVIRONMENTS,
    PLACEHOLDER,
    STRICT_SECRET_ENVIRONMENTS,
    WELL_KNOWN_DEFAULTS,
    Environment,
)
from .project import Project

#: Services meant to be reachable from the network: publishing on every interface is their
#: job. Only while HTTPS is enforced does that pass (the proxy then redirects HTTP to HTTPS).
PUBLIC_ENTRY_SERVICES = frozenset({"tls-proxy"})

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

#: A certificate closer than this to its expiry is a warning.
CERT_WARN_DAYS = 30

CHECK_PORTS = "ports bound to an address"
CHECK_PRIVILEGED = "not privileged"
CHECK_USER = "non-root user"
CHECK_NNP = "no-new-privileges"
CHECK_CAPS = "capabilities dropped"
CHECK_ROOTFS = "read-only root filesystem"


@dataclass(frozen=True)
class Finding:
    """One check's result for one group (a service, ``credentials``, ``files`` or ``tls``).

    ``origin`` says what was looked at: ``config`` (the merged compose configuration),
    ``container <name>`` (a running container) or ``environment`` (env files, TLS files).
    """

    group: str
    check: Check
    origin: str = "config"

    @property
    def status(self) -> Status:
        return self.check.status

    def to_dict(self) -> dict[str, str]:
        return {"group": self.group, "origin": self.origin, **self.check.to_dict()}


@dataclass(frozen=True)
class SecurityReport:
    environment: str
    findings: tuple[Finding, ...]
    containers_inspected: int = 0

    @property
    def status(self) -> Status:
        return worst(f.check for f in self.findings)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.FAIL]

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for f in self.findings:
            counts[f.status.value] += 1
        return counts

    def by_group(self) -> dict[str, list[Finding]]:
        groups: dict[str, list[Finding]] = {}
        for f in self.findings:
            groups.setdefault(f.group, []).append(f)
        return groups

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "status": self.status.value,
            "counts": self.counts(),
            "containers_inspected": self.containers_inspected,
            "findings": [f.to_dict() for f in self.findings],
        }


# ---- helpers ------------------------------------------------------------------------------
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


# ---- per-service checks (shared by config and running containers) -------------------------
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


# ---- the merged configuration ---------------------------------------------------------------
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


CHECK_SECRETS = "secrets as files"
#: Services whose image can take a secret only on its command line, and for how long. Their
#: check warns instead of passing (docs/SECURITY.md, "Secrets as files").
SECRETS_ON_ARGV: Mapping[str, str] = {
    "airflow-init": "`airflow users create` takes the admin password only as --password "
    "(Airflow 2's CLI has no file option): on the one-shot's command line while it runs",
    "superset": "`superset fab create-admin` takes the admin password only as --password: "
    "on the bootstrap's command line for the seconds it runs",
}


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
    leaked = sorted(k for k, v in env.values.items() if env.is_secret(k) and len(v) >= 4
                    and v in text)
    if leaked:
        return failed(
            CHECK_SECRETS,
            f"the values of {', '.join(leaked)} are in its configuration (docker inspect)",
            "give it the secret as a file (compose/docker-compose.secrets-files.yaml)",
        )
    files = len(raw.get("secrets") or [])
    if name in SECRETS_ON_ARGV:
        return warned(CHECK_SECRETS, SECRETS_ON_ARGV[name], "no fix in the image; see docs/SECURITY.md")
    return passed(CHECK_SECRETS, f"{files} secret file(s)" if files else "no secret needed")


# ---- running containers ---------------------------------------------------------------------
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
        service = str(labels.get("com.docker.compose.service") or name)
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


# ---- credentials, files, TLS ----------------------------------------------------------------
def credential_findings(env: Environment) -> list[Finding]:
    """Placeholders, well-known defaults and (in prod) short values; names only, never values."""
    placeholder, default, short, ok = [], [], [], []
    for key, value in sorted(env.values.items()):
        if not env.is_secret(key) or not value:
            continue
        if PLACEHOLDER in value:
            placeholder.append(key)
        elif value.strip().lower() in WELL_KNOWN_DEFAULTS:
            default.append(key)
        elif len(value) < MIN_PROD_SECRET_LENGTH:
            short.append(key)
        else:
            ok.append(key)
    fix = f"run `invoke secrets.generate --env {env.name}`"
    findings: list[Finding] = []
    if placeholder:
        findings.append(
            Finding(
                "credentials",
                failed(
                    "no placeholders",
                    f"{PLACEHOLDER} left in {', '.join(placeholder)}",
                    fix,
                ),
                "environment",
            )
        )
    else:
        findings.append(Finding("credentials", passed("no placeholders"), "environment"))
    if default:
        detail = f"well-known default values in {', '.join(default)}"
        findings.append(
            Finding(
                "credentials",
                failed("no default credentials", detail, f"{fix} --rotate {','.join(default)}")
                if env.name in NON_DEV_ENVIRONMENTS
                else warned(
                    "no default credentials",
                    detail + " (expected in dev only)",
                    "never reuse dev credentials elsewhere",
                ),
                "environment",
            )
        )
    else:
        findings.append(Finding("credentials", passed("no default credentials"), "environment"))
    if short:
        detail = f"shorter than {MIN_PROD_SECRET_LENGTH} characters: {', '.join(short)}"
        check = (
            failed("strong secrets", detail, f"{fix} --rotate {','.join(short)}")
            if env.name in STRICT_SECRET_ENVIRONMENTS
            else warned("strong secrets", detail, f"{fix} --rotate {','.join(short)}")
        )
        findings.append(Finding("credentials", check, "environment"))
    else:
        findings.append(
            Finding(
                "credentials",
                passed("strong secrets", f"{len(ok)} secrets of {MIN_PROD_SECRET_LENGTH}+ chars"),
                "environment",
            )
        )
    return findings


def _private(path: Path) -> bool:
    return not (path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def file_findings(env: Environment) -> list[Finding]:
    """Every layered env file that sets a secret (the local file, ``--env-file`` files) and
    the TLS key must be readable by its owner only (mode 0600)."""
    tracked = env.root / "env" / f"{env.name}.env"
    findings: list[Finding] = []
    for path in env.files:
        if path == tracked or not path.exists():
            continue
        try:
            text = path.read_text()
        except OSError:
            continue
        holds_secret = any(
            line.split("=", 1)[0].strip().removeprefix("export ").strip()
            and env.is_secret(line.split("=", 1)[0].strip().removeprefix("export ").strip())
            for line in text.splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        )
        if not holds_secret:
            continue
        findings.append(Finding("files", _mode_check(path, "env file"), "environment"))
    key = env.get("TLS_KEY_FILE") or ""
    if key and (env.get("HTTPS_MODE") or "disabled").lower() != "disabled":
        key_path = _resolve(env, key)
        if key_path.exists():
            findings.append(Finding("files", _mode_check(key_path, "TLS key"), "environment"))
    return findings


def _mode_check(path: Path, what: str) -> Check:
    mode = stat.S_IMODE(path.stat().st_mode)
    name = f"{what} {path.name} private"
    if _private(path):
        return passed(name, f"mode {mode:04o}")
    return failed(
        name,
        f"{path} is readable by others (mode {mode:04o})",
        f"chmod 600 {path}",
    )


def _resolve(env: Environment, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else env.root / path




def tls_findings(env: Environment, *, now: _dt.datetime | None = None) -> list[Finding]:
    """HTTPS_MODE and, unless TLS is disabled, the certificate's presence and expiry."""
    now = now or _dt.datetime.now(_dt.UTC)
    mode = (env.get("HTTPS_MODE") or "disabled").lower()
    strict = env.name in NON_DEV_ENVIRONMENTS
    findings: list[Finding] = []
    if mode == "enforced":
        findings.append(
            Finding("tls", passed("HTTPS enforced", "HTTPS_MODE=enforced"), "environment")
        )
    elif mode == "optional":
        findings.append(
            Finding(
                "tls",
                warned(
                    "HTTPS enforced",
                    "HTTPS_MODE=optional: the UIs also answer plain HTTP",
                    "set HTTPS_MODE=enforced",
                ),
                "environment",
            )
        )
    else:
        detail = "HTTPS_MODE=disabled: credentials cross the network in clear text"
        hint = "set HTTPS_MODE=enforced with TLS_CERT_FILE and TLS_KEY_FILE"
        findings.append(
            Finding(
                "tls",
                failed("HTTPS enforced", detail, hint)
                if strict
                else warned("HTTPS enforced", detail + " (expected in dev)", hint),
                "environment",
            )
        )
        return findings
    cert = env.get("TLS_CERT_FILE") or ""
    name = "certificate valid"
    if not cert:
        findings.append(
            Finding(
                "tls", failed(name, "TLS_CERT_FILE is not set", "set TLS_CERT_FILE"), "environment"
            )
        )
        return findings
    path = _resolve(env, cert)
    if not path.exists():
        missing = failed(
            name,
            f"certificate {cert} does not exist",
            "install the certificate there, or point TLS_CERT_FILE at it",
        )
        findings.append(Finding("tls", missing, "environment"))
        return findings
    try:
        expiry = certificate_expiry(path)
    except ValueError as exc:
        findings.append(
            Finding(
                "tls",
                failed(name, f"cannot read {cert}: {exc}", "point TLS_CERT_FILE at a PEM file"),
                "environment",
            )
        )
        return findings
    days = (expiry - now).total_seconds() / 86400
    when = expiry.date().isoformat()
    if days < 0:
        check = failed(name, f"expired on {when}", "renew the certificate")
    elif days < CERT_WARN_DAYS:
        check = warned(name, f"expires in {int(days)} days ({when})", "renew the certificate soon")
    else:
        check = passed(name, f"expires {when} (in {int(days)} days)")
    findings.append(Finding("tls", check, "environment"))
    return findings


# ---- the whole report ---------------------------------------------------------------------
def security_report(project: Project, *, inspect_running: bool = True) -> SecurityReport:
    """Every finding for a project. Docker calls: ``compose config`` (offline), and, when
    ``inspect_running``, two for the local images' users plus one ``ps`` and one ``inspect``.
    Without ``inspect_running`` (``--no-containers``) the engine is not asked anything: the
    images' own users are then not known (docs/SECURITY.md)."""
    config = project.compose.config()
    env = project.env
    images = [str(s.get("image", "")) for s in (config.get("services") or {}).values()]
    image_users = (
        local_image_users(project.compose.docker_cmd, images) if inspect_running else {}
    )
    findings = config_findings(config, env=env, image_users=image_users)
    inspected: list[dict[str, Any]] = []
    if inspect_running:
        rows = project_containers(project.compose.docker_cmd, project.compose.project_name)
        ids = [str(r.get("ID", "")) for r in rows if str(r.get("State", "")) == "running"]
        inspected = inspect_containers(project.compose.docker_cmd, ids)
        findings += container_findings(inspected, env=env)
    findings += credential_findings(env) + file_findings(env) + tls_findings(env)
    return SecurityReport(
        environment=env.name,
        findings=tuple(findings),
        containers_inspected=len(inspected),
    )
