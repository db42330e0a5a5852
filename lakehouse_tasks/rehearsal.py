"""Stand-in images for the offline rehearsal (issue 4).

Builds, with nothing but the Debian packages of this machine and the local Docker engine
(no registry is ever contacted):

* ``lakehouse-rehearsal/busybox:<hash>`` - a ``FROM scratch`` image with the machine's static
  busybox, the stand-in program ``/standin/run`` and shims (curl, mc, dbt, trino health-check,
  python, bash, promtool) so the real healthcheck commands of the stack work unchanged.
* ``lakehouse-rehearsal/postgres:<hash>`` - a real PostgreSQL 15 on a debootstrapped Debian
  root, with an entrypoint compatible with the official postgres image.

Both are also tagged ``:rehearsal``. Sources live in ``compose/standins/<kind>/``.
Docker is called through the engine package (:mod:`lakehouse_tasks.engine.images`: build,
import, tag, rmi); only the root file system tools (debootstrap, chroot, tar) run here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .engine import images as engine_images
from .errors import EngineError

REPO_ROOT = Path(__file__).resolve().parent.parent
STANDINS_DIR = REPO_ROOT / "compose" / "standins"
BUSYBOX_BINARY = Path("/bin/busybox")
DEBIAN_SUITE = "bookworm"
REPOSITORY_PREFIX = "lakehouse-rehearsal"
MOVING_TAG = "rehearsal"

STANDIN_IMAGES: dict[str, str] = {
    "busybox": f"{REPOSITORY_PREFIX}/busybox",
    "postgres": f"{REPOSITORY_PREFIX}/postgres",
}
POSTGRES_BASE_IMAGE = f"{REPOSITORY_PREFIX}/postgres-base"

# What the last build_standins() call did per kind: "built" or "cached".
LAST_BUILD: dict[str, str] = {}

Log = Callable[[str], None]


class StandinBuildError(RuntimeError):
    """A stand-in image could not be built."""


# --------------------------------------------------------------------------------------
# Per-service stand-in data
# --------------------------------------------------------------------------------------

# service -> (image kind, http ports {port: health paths}, tcp ports, data dir, one-shot)
_SPECS: dict[str, tuple[str, dict[int, list[str]], list[int], str, bool]] = {
    "minio": (
        "busybox",
        {
            9000: ["/minio/health/live", "/minio/health/ready", "/minio/v2/metrics/cluster"],
            9001: ["/"],
        },
        [],
        "/data",
        False,
    ),
    "minio-init": ("busybox", {}, [], "", True),
    "metastore-db": ("postgres", {}, [], "/var/lib/postgresql/data", False),
    "superset-db": ("postgres", {}, [], "/var/lib/postgresql/data", False),
    "airflow-db": ("postgres", {}, [], "/var/lib/postgresql/data", False),
    "hive-metastore": ("busybox", {}, [9083], "/opt/hive/data/warehouse", False),
    "spark-master": ("busybox", {8080: ["/"]}, [7077], "/opt/spark/work-dir", False),
    "spark-worker-1": ("busybox", {8081: ["/"]}, [], "/opt/spark/work-dir", False),
    "spark-worker-2": ("busybox", {8081: ["/"]}, [], "/opt/spark/work-dir", False),
    "trino": ("busybox", {8080: ["/v1/info"]}, [], "/data/trino", False),
    "superset": ("busybox", {8088: ["/health"]}, [], "/app/superset_home", False),
    "airflow-init": ("busybox", {}, [], "/opt/airflow/logs", True),
    "airflow-webserver": ("busybox", {8080: ["/health"]}, [], "/opt/airflow/logs", False),
    "airflow-scheduler": ("busybox", {8974: ["/health"]}, [], "/opt/airflow/logs", False),
    "ingestor": ("busybox", {8000: ["/health"]}, [], "/data", False),
    "dbt": ("busybox", {}, [], "/usr/app/target", False),
    # monitoring plugin
    "prometheus": (
        "busybox",
        {9090: ["/-/healthy", "/-/ready", "/metrics"]},
        [],
        "/prometheus",
        False,
    ),
    "grafana": ("busybox", {3000: ["/api/health"]}, [], "/var/lib/grafana", False),
    # the TLS reverse proxy of the staging (profile tls) and prod overrides
    "tls-proxy": ("busybox", {80: ["/healthz"], 443: ["/"]}, [], "", False),
}

#: Services that the monitoring plugin adds; its own override swaps their images.
PLUGIN_SERVICES = frozenset({"prometheus", "grafana"})

# Healthchecks that cannot work unchanged on a stand-in, as compose `test` lists. Empty: every
# healthcheck of compose/docker-compose.yaml works through the shims of the busybox image or
# is the real binary in the postgres image. (Trino's probe is the image's own HEALTHCHECK
# instruction, which a stand-in would not inherit; it works only because the compose file
# restates it as ["CMD", "/usr/lib/trino/bin/health-check"], which the busybox image shims.)
_HEALTHCHECK_OVERRIDES: dict[str, list[str]] = {}


def standin_env(service: str) -> dict[str, str]:
    """The STANDIN_* environment of the stand-in of ``service``."""
    try:
        kind, http, tcp, data_dir, oneshot = _SPECS[service]
    except KeyError:
        raise KeyError(f"no stand-in for service {service!r}; known: {sorted(_SPECS)}") from None
    env = {"STANDIN_SERVICE": service}
    if kind == "postgres":
        return env
    env["STANDIN_HTTP_PORTS"] = " ".join(str(p) for p in http)
    for port, paths in http.items():
        env[f"STANDIN_HTTP_PATHS_{port}"] = " ".join(paths)
    env["STANDIN_TCP_PORTS"] = " ".join(str(p) for p in tcp)
    env["STANDIN_DATA_DIR"] = data_dir
    env["STANDIN_ONESHOT"] = "1" if oneshot else "0"
    return env


def _service_standin(service: str) -> dict:
    kind = _SPECS[service][0]
    entry = {
        "image_kind": kind,
        "image": f"{STANDIN_IMAGES[kind]}:{MOVING_TAG}",
        "environment": standin_env(service),
        "healthcheck_override": _HEALTHCHECK_OVERRIDES.get(service),
        "data_dir": _SPECS[service][3] or None,
        "oneshot": _SPECS[service][4],
    }
    if kind == "busybox":
        # The real services set their own entrypoint/command (spark-class, minio server...):
        # the override has to reset both so the stand-in program runs.
        entry["entrypoint"] = ["/standin/run"]
        entry["command"] = []
    else:
        entry["entrypoint"] = ["/usr/local/bin/docker-entrypoint.sh"]
        entry["command"] = ["postgres"]
    return entry


SERVICE_STANDINS: dict[str, dict] = {name: _service_standin(name) for name in _SPECS}


# --------------------------------------------------------------------------------------
# Inputs and hashes
# --------------------------------------------------------------------------------------


def _files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def _read_packages(path: Path) -> list[str]:
    pkgs = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pkgs.extend(line.split())
    return pkgs


def _hash_update_file(h, path: Path, name: str) -> None:
    h.update(name.encode() + b"\0")
    h.update(oct(path.stat().st_mode & 0o111).encode() + b"\0")
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    h.update(b"\0")


def _postgres_root_hash() -> str:
    """Hash of what the debootstrap root depends on (not the entrypoint)."""
    h = hashlib.sha256()
    h.update(f"suite={DEBIAN_SUITE};variant=minbase;root-v1\0".encode())
    h.update(" ".join(_read_packages(STANDINS_DIR / "postgres" / "packages.txt")).encode())
    return h.hexdigest()[:16]


def inputs_hash(kind: str) -> str:
    """Short sha256 over every input of the ``kind`` image."""
    if kind not in STANDIN_IMAGES:
        raise KeyError(f"unknown stand-in kind {kind!r}; known: {sorted(STANDIN_IMAGES)}")
    directory = STANDINS_DIR / kind
    h = hashlib.sha256()
    h.update(f"kind={kind}\0".encode())
    for path in _files_under(directory):
        _hash_update_file(h, path, path.relative_to(directory).as_posix())
    if kind == "busybox":
        _hash_update_file(h, BUSYBOX_BINARY, "<busybox binary>")
    else:
        h.update(_postgres_root_hash().encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _run(argv: list[str], log: Log | None = None, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    proc = subprocess.run(argv, **kw)
    if proc.returncode != 0:
        out = ((proc.stdout or "") + (proc.stderr or ""))[-3000:] if kw["capture_output"] else ""
        raise StandinBuildError(f"{' '.join(argv[:4])} ... failed ({proc.returncode}):\n{out}")
    return proc


def image_id(ref: str) -> str | None:
    """The image id of ``ref`` or None when the engine does not have it."""
    return engine_images.image_id(ref)


@contextlib.contextmanager
def _building(what: str) -> Iterator[None]:
    """A failed docker command of a build as :class:`StandinBuildError`, with its stderr."""
    try:
        yield
    except EngineError as exc:
        raise StandinBuildError(f"{what} failed:\n{exc.stderr[-3000:]}") from None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "lakehouse-ops" / "rehearsal"
    path.mkdir(parents=True, exist_ok=True)
    return path


def debian_mirror() -> str:
    """The Debian archive this machine's apt already uses (never written into the repo).

    Same logic as scripts/docker-engine: first ``URIs:`` of debian.sources that is not the
    security archive, else the first ``deb`` line of sources.list.
    """
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.is_file():
        for line in deb822.read_text().splitlines():
            if line.startswith("URIs:"):
                parts = line.split()
                if len(parts) > 1 and "-security" not in parts[1]:
                    return parts[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == "deb" and "security" not in line:
                for f in fields[1:]:
                    if "://" in f:
                        return f
    raise StandinBuildError("cannot find the Debian mirror in this machine's apt sources")


def _is_static_elf(path: Path) -> bool:
    """True when ``path`` is an ELF file without a program interpreter (PT_INTERP)."""
    with open(path, "rb") as fh:
        ident = fh.read(16)
        if ident[:4] != b"\x7fELF":
            return False
        is64, little = ident[4] == 2, ident[5] == 1
        end = "<" if little else ">"
        if is64:
            fh.seek(0x20)
            (phoff,) = struct.unpack(end + "Q", fh.read(8))
            fh.seek(0x36)
        else:
            fh.seek(0x1C)
            (phoff,) = struct.unpack(end + "I", fh.read(4))
            fh.seek(0x2A)
        phentsize, phnum = struct.unpack(end + "HH", fh.read(4))
        for i in range(phnum):
            fh.seek(phoff + i * phentsize)
            (ptype,) = struct.unpack(end + "I", fh.read(4))
            if ptype == 3:  # PT_INTERP
                return False
    return True


def _tag(ref: str, *targets: str) -> None:
    with _building(f"docker tag {ref}"):
        engine_images.tag(ref, *targets)


def _docker_build(context: Path, ref: str, build_args: dict[str, str] | None = None) -> None:
    with _building(f"docker build {ref}"):
        engine_images.build(context, ref, build_args)


def _import_rootfs(tarball: Path, ref: str, changes: list[str]) -> None:
    with _building(f"docker import {ref}"):
        engine_images.import_rootfs(tarball, ref, changes)


# --------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------


def _build_busybox(ref: str, log: Log) -> None:
    if not BUSYBOX_BINARY.is_file():
        raise StandinBuildError(f"{BUSYBOX_BINARY} is missing: apt-get install busybox-static")
    if not _is_static_elf(BUSYBOX_BINARY):
        raise StandinBuildError(f"{BUSYBOX_BINARY} is not static: apt-get install busybox-static")
    with tempfile.TemporaryDirectory(prefix="standin-busybox-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(STANDINS_DIR / "busybox", context, symlinks=True)
        shutil.copy2(BUSYBOX_BINARY, context / "busybox")
        _docker_build(context, ref)


def _postgres_root_tar(log: Log) -> Path:
    """The debootstrapped root as a tar file, cached under ~/.cache/lakehouse-ops/."""
    root_hash = _postgres_root_hash()
    cache = _cache_dir()
    tarball = cache / f"postgres-root-{root_hash}.tar"
    if tarball.is_file():
        log(f"postgres root: cached {tarball.name}")
        return tarball
    if os.geteuid() != 0:
        raise StandinBuildError("debootstrap needs root to build the postgres stand-in root")
    if shutil.which("debootstrap") is None:
        raise StandinBuildError("debootstrap is missing: apt-get install debootstrap")
    packages = _read_packages(STANDINS_DIR / "postgres" / "packages.txt")
    mirror = debian_mirror()
    work = Path(tempfile.mkdtemp(prefix="postgres-root-", dir=cache))
    try:
        rootfs = work / "rootfs"
        log(f"postgres root: debootstrap {DEBIAN_SUITE} minbase + {','.join(packages)}")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ]
        )
        # The official image runs postgres as uid/gid 999: renumber the Debian user.
        script = r"""
set -e
old_uid=$(id -u postgres); old_gid=$(id -g postgres)
if [ "$old_uid" != 999 ]; then
  groupmod -g 999 postgres
  usermod -u 999 -g 999 postgres
  find / -xdev -uid "$old_uid" -exec chown -h 999 {} +
  find / -xdev -gid "$old_gid" -exec chgrp -h 999 {} +
fi
# No default cluster: the entrypoint creates one in $PGDATA.
rm -rf /var/lib/postgresql/15 /etc/postgresql/15
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log
"""
        _run(["chroot", str(rootfs), "/bin/sh", "-c", script])
        # debootstrap can leave these mounted when it fails half-way; be tidy anyway.
        for sub in ("proc", "sys"):
            subprocess.run(["umount", "-l", str(rootfs / sub)], capture_output=True)
        partial = work / "root.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."])
        partial.rename(tarball)
        for old in cache.glob("postgres-root-*.tar"):
            if old != tarball:
                old.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def _build_postgres(ref: str, log: Log) -> None:
    base = f"{POSTGRES_BASE_IMAGE}:{_postgres_root_hash()}"
    if image_id(base) is None:
        tarball = _postgres_root_tar(log)
        log(f"postgres root: docker import -> {base}")
        _import_rootfs(
            tarball,
            base,
            [
                "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:"
                "/usr/sbin:/usr/bin:/sbin:/bin",
                'ENTRYPOINT ["/bin/bash"]',
            ],
        )
    with tempfile.TemporaryDirectory(prefix="standin-postgres-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(STANDINS_DIR / "postgres", context, symlinks=True)
        _docker_build(context, ref, {"BASE": base})


def _untag_stale(repository: str, keep: set[str]) -> None:
    """Remove the tags of older builds of ``repository`` (an image still used stays)."""
    stale = [ref for ref in engine_images.repository_tags(repository) if ref not in keep]
    engine_images.untag(stale)


_BUILDERS = {"busybox": _build_busybox, "postgres": _build_postgres}


def build_standins(
    force: bool = False, kinds: Iterable[str] | None = None, log: Log = print
) -> dict[str, str]:
    """Build the stand-in images that are missing or whose inputs changed.

    Returns kind -> full image reference (``lakehouse-rehearsal/<kind>:<hash>``); the same
    image is also tagged ``:rehearsal``. A kind whose hash tag exists is skipped unless
    ``force``. ``LAST_BUILD`` records "built" or "cached" per kind.
    """
    selected = list(kinds) if kinds is not None else list(STANDIN_IMAGES)
    result: dict[str, str] = {}
    for kind in selected:
        if kind not in STANDIN_IMAGES:
            raise KeyError(f"unknown stand-in kind {kind!r}; known: {sorted(STANDIN_IMAGES)}")
        ref = f"{STANDIN_IMAGES[kind]}:{inputs_hash(kind)}"
        moving = f"{STANDIN_IMAGES[kind]}:{MOVING_TAG}"
        existing = image_id(ref)
        if existing and not force:
            if image_id(moving) != existing:
                _tag(ref, moving)
            LAST_BUILD[kind] = "cached"
            log(f"{kind}: cached {ref}")
        else:
            log(f"{kind}: building {ref}")
            _BUILDERS[kind](ref, log)
            _tag(ref, moving)
            _untag_stale(STANDIN_IMAGES[kind], keep={ref, moving})
            if kind == "postgres":
                _untag_stale(
                    POSTGRES_BASE_IMAGE, keep={f"{POSTGRES_BASE_IMAGE}:{_postgres_root_hash()}"}
                )
            LAST_BUILD[kind] = "built"
            log(f"{kind}: built {ref} ({image_id(ref)})")
        result[kind] = ref
    return result


# --------------------------------------------------------------------------------------
# The compose rehearsal override
# --------------------------------------------------------------------------------------

OVERRIDE_PATH = REPO_ROOT / "compose" / "rehearsal.yaml"
#: Stand-ins for services that only some environment overrides define (the TLS proxy of
#: staging and prod): a separate file, so that it never adds the service to dev.
PROXY_OVERRIDE_PATH = REPO_ROOT / "compose" / "rehearsal.proxy.yaml"
OPTIONAL_SERVICES = frozenset({"tls-proxy"})

_OVERRIDE_HEADER = """\
# The rehearsal layer: every service of the stack on its offline stand-in image.
#
# GENERATED from lakehouse_tasks/rehearsal.py (SERVICE_STANDINS); do not edit by hand:
#   python -m lakehouse_tasks.rehearsal override
# tests/rehearsal/test_override.py fails when this file and the generator disagree.
#
# It swaps the image (and resets build, entrypoint and command so the stand-in program runs)
# and adds the stand-in's STANDIN_* variables. Everything else of the real files stays as it
# is: resource limits and reservations, depends_on conditions, volumes, restart policies,
# logging, ports, networks, the per-environment overrides and the one-shot semantics. The
# real healthchecks stay too: the stand-ins answer them through the same binaries (shims).
#
# A test or an operator can make one service misbehave at start with a variable named
# STANDIN_FAULT_<SERVICE> (upper case, dashes as underscores), for example
# STANDIN_FAULT_HIVE_METASTORE=never-healthy in an --env-file (see compose/standins/README.md).
"""


def fault_variable(service: str) -> str:
    """The variable that sets ``service``'s fault switch at start."""
    return "STANDIN_FAULT_" + service.upper().replace("-", "_")


def _yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def render_override(services: dict[str, dict] | None = None, *, optional: bool = False) -> str:
    """The text of compose/rehearsal.yaml (or, with ``optional``, rehearsal.proxy.yaml)."""
    services = SERVICE_STANDINS if services is None else services
    lines = [_OVERRIDE_HEADER, "services:"]
    for name, spec in services.items():
        if name in PLUGIN_SERVICES or (name in OPTIONAL_SERVICES) != optional:
            continue
        lines.extend(service_override_lines(name, spec))
    lines.append("")
    return "\n".join(lines)


def service_override_lines(name: str, spec: dict) -> list[str]:
    """The override lines that put ``name`` on its stand-in."""
    lines: list[str] = []
    lines.append(f"  {name}:")
    lines.append(f"    image: {spec['image']}")
    lines.append("    build: !reset null")
    lines.append("    pull_policy: never")
    lines.append(f"    entrypoint: {_yaml_list(spec['entrypoint'])}")
    lines.append(f"    command: !reset {_yaml_list(spec['command'])}")
    if spec.get("healthcheck_override"):
        lines.append("    healthcheck:")
        lines.append(f"      test: {_yaml_list(spec['healthcheck_override'])}")
    lines.append("    environment:")
    for key, value in spec["environment"].items():
        lines.append(f"      {key}: {json.dumps(value)}")
    lines.append(f'      STANDIN_FAULT: "${{{fault_variable(name)}:-none}}"')
    return lines


def write_override() -> bool:
    """Write compose/rehearsal.yaml and rehearsal.proxy.yaml; True when one changed."""
    changed = False
    for path, optional in ((OVERRIDE_PATH, False), (PROXY_OVERRIDE_PATH, True)):
        text = render_override(optional=optional)
        if not (path.exists() and path.read_text() == text):
            path.write_text(text)
            changed = True
    return changed


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    force = "--force" in args
    args = [a for a in args if a != "--force"]
    if args and args[0] == "override":
        from .rehearsal_real import write_real_override

        changed = write_override()
        changed = write_real_override() or changed
        print(f"compose/rehearsal*.yaml {'written' if changed else 'up to date'}")
        return 0
    if not args or args[0] not in {"build", "hash", "services"}:
        print(
            "usage: python -m lakehouse_tasks.rehearsal build [--force] [KIND...] | hash | "
            "services | override",
            file=sys.stderr,
        )
        return 2
    if args[0] == "hash":
        for kind in STANDIN_IMAGES:
            print(kind, inputs_hash(kind))
        return 0
    if args[0] == "services":
        import json

        print(json.dumps(SERVICE_STANDINS, indent=2))
        return 0
    try:
        refs = build_standins(force=force, kinds=args[1:] or None)
    except StandinBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for kind, ref in refs.items():
        print(f"{kind} {ref}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
