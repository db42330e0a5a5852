"""The real-application rehearsal tier (issue 16): images that run the real software.

Where the package registries reachable from this machine provide a service's real software,
the rehearsal runs it instead of a busybox stand-in, inside an image that mirrors the upstream
image's users, paths, entrypoint and healthcheck binaries, so the real compose files run
unchanged:

* ``lakehouse-rehearsal/spark`` - Apache Spark from the ``pyspark`` distribution on Debian's
  OpenJDK 17, as uid 185 under ``/opt/spark`` (spark-master, spark-worker-1/2);
* ``lakehouse-rehearsal/hive`` - a real Hive Metastore Thrift server, Hive 2.3.9 from
  pyspark's jars, with Debian's PostgreSQL JDBC driver (hive-metastore; Hive 4.1 is pinned);
* ``lakehouse-rehearsal/s3`` - moto's S3 server behind MinIO's ``minio server`` entrypoint
  and an ``mc`` that really talks S3 (minio, minio-init);
* ``lakehouse-rehearsal/superset`` - Apache Superset 5.0.0 with the derived image's drivers and
  bootstrap, laid out like apache/superset (superset);
* ``lakehouse-rehearsal/airflow`` - Apache Airflow 2.11.0, laid out like apache/airflow (one
  image for airflow-init, airflow-webserver and airflow-scheduler).

All start from ``lakehouse-rehearsal/debian-base:<root hash>``, a debootstrapped Debian root
(cached as a tar file like the postgres stand-in's), and install their packages with apt-get
and pip during ``docker build`` (containers reach the registries here). Each image is tagged
with the hash of its inputs (its directory under ``compose/standins/``, its pinned versions,
the base root) and ``:rehearsal``; a build with nothing changed only looks the tag up.

Select the tier with ``LAKEHOUSE_REHEARSAL_TIER=real`` next to ``--rehearsal``: the project
then uses ``compose/rehearsal.real.yaml`` instead of ``compose/rehearsal.yaml``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import rehearsal as _r

TIER_VARIABLE = "LAKEHOUSE_REHEARSAL_TIER"
REAL_TIER = "real"
QUICK_TIER = "quick"

DEBIAN_BASE_IMAGE = f"{_r.REPOSITORY_PREFIX}/debian-base"
REAL_OVERRIDE_PATH = _r.REPO_ROOT / "compose" / "rehearsal.real.yaml"

#: Pinned versions of what each real image installs (build arguments, part of the hash).
PYSPARK_VERSION = "3.5.6"  # = the compose files' apache/spark:3.5.6
MOTO_VERSION = "5.2.5"
SUPERSET_VERSION = "5.0.0"  # = lakehouse/superset:5.0.0-1 (apache/superset:5.0.0 + drivers)
#: the drivers compose/images/superset/Dockerfile adds (a unit test keeps them equal)
SUPERSET_DRIVERS = {"PSYCOPG2_VERSION": "2.9.10", "TRINO_CLIENT_VERSION": "0.336.0"}
AIRFLOW_VERSION = "2.11.0"  # = apache/airflow:2.11.0

#: kind -> (build arguments, what it is)
REAL_KINDS: dict[str, dict[str, str]] = {
    "spark": {"PYSPARK_VERSION": PYSPARK_VERSION},
    "hive": {},  # built FROM the spark image: Hive 2.3.9's metastore from pyspark's jars
    "s3": {"MOTO_VERSION": MOTO_VERSION},
    "superset": {"SUPERSET_VERSION": SUPERSET_VERSION, **SUPERSET_DRIVERS},
    "airflow": {"AIRFLOW_VERSION": AIRFLOW_VERSION},  # airflow-init, -webserver, -scheduler
}
#: kind -> the real kind whose image is its BASE (instead of the Debian root)
REAL_BASES: dict[str, str] = {"hive": "spark"}
#: kind -> files of the real stack's own images copied into its build context (and hashed)
REAL_EXTRA_FILES: dict[str, list[Path]] = {
    "hive": [_r.REPO_ROOT / "compose" / "images" / "hive" / "lakehouse-entrypoint.sh"],
    "superset": [_r.REPO_ROOT / "compose" / "images" / "superset" / "bootstrap.sh"],
}
REAL_IMAGES: dict[str, str] = {kind: f"{_r.REPOSITORY_PREFIX}/{kind}" for kind in REAL_KINDS}

#: service -> real image kind. Every other service keeps its stand-in in the real tier.
REAL_SERVICES: dict[str, str] = {
    "minio": "s3",
    "minio-init": "s3",
    "hive-metastore": "hive",
    "spark-master": "spark",
    "spark-worker-1": "spark",
    "spark-worker-2": "spark",
    "superset": "superset",
    "airflow-init": "airflow",
    "airflow-webserver": "airflow",
    "airflow-scheduler": "airflow",
}
#: kinds that run the pinned version itself (the others run another version: see docs)
SAME_VERSION_KINDS = {"spark", "superset", "airflow"}
#: service -> environment the real tier sets on top of the real files: only resource tuning
#: for the rehearsal machine (one gunicorn worker instead of the dev override's two).
REAL_ENVIRONMENT: dict[str, dict[str, str]] = {
    "airflow-webserver": {"AIRFLOW__WEBSERVER__WORKERS": "1"},
}


#: What runs in the real tier per service, for docs and for the smoke check's verdicts:
#: "real", "real-other-version" or "stand-in".
def service_fidelity(service: str, tier: str) -> str:
    if tier != REAL_TIER:
        return "real" if _r._SPECS.get(service, ("",))[0] == "postgres" else "stand-in"
    if service in REAL_SERVICES:
        return "real" if REAL_SERVICES[service] in SAME_VERSION_KINDS else "real-other-version"
    if _r._SPECS.get(service, ("",))[0] == "postgres":
        return "real-other-version"  # PostgreSQL 15 for the pinned 16
    return "stand-in"


LAST_BUILD: dict[str, str] = {}


def rehearsal_tier(environ: dict[str, str] | None = None) -> str:
    """``real`` when LAKEHOUSE_REHEARSAL_TIER says so, else ``quick`` (the busybox tier)."""
    value = (environ if environ is not None else os.environ).get(TIER_VARIABLE, "")
    return REAL_TIER if value.strip().lower() == REAL_TIER else QUICK_TIER


# --------------------------------------------------------------------------------------
# hashes
# --------------------------------------------------------------------------------------


def _base_root_hash() -> str:
    h = hashlib.sha256()
    h.update(f"suite={_r.DEBIAN_SUITE};variant=minbase;debian-base-v1\0".encode())
    h.update(" ".join(_r._read_packages(_r.STANDINS_DIR / "debian" / "packages.txt")).encode())
    return h.hexdigest()[:16]


def real_inputs_hash(kind: str) -> str:
    """Short sha256 over every input of the real ``kind`` image."""
    if kind not in REAL_KINDS:
        raise KeyError(f"unknown real image kind {kind!r}; known: {sorted(REAL_KINDS)}")
    directory = _r.STANDINS_DIR / kind
    h = hashlib.sha256()
    h.update(f"real-kind={kind}\0base={_base_root_hash()}\0".encode())
    if kind in REAL_BASES:
        h.update(f"base-image={real_inputs_hash(REAL_BASES[kind])}\0".encode())
    for key, value in sorted(REAL_KINDS[kind].items()):
        h.update(f"{key}={value}\0".encode())
    for path in _r._files_under(directory):
        _r._hash_update_file(h, path, path.relative_to(directory).as_posix())
    for path in REAL_EXTRA_FILES.get(kind, []):
        _r._hash_update_file(h, path, f"<extra>/{path.name}")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------


def _base_root_tar(log: _r.Log) -> Path:
    return _r.build_root_tarball(
        "debian-root",
        _base_root_hash(),
        _r.STANDINS_DIR / "debian" / "packages.txt",
        "apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log",
        log,
        label="debian root",
    )


def debian_base(log: _r.Log) -> str:
    """``lakehouse-rehearsal/debian-base:<root hash>``, imported from the cached root."""
    base = f"{DEBIAN_BASE_IMAGE}:{_base_root_hash()}"
    if _r.image_id(base) is None:
        tarball = _base_root_tar(log)
        log(f"debian root: docker import -> {base}")
        _r._import_rootfs(
            tarball,
            base,
            ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             'CMD ["/bin/bash"]'],
        )  # fmt: skip
        _r._untag_stale(DEBIAN_BASE_IMAGE, keep={base})
    return base


def build_ca_bundle() -> Path:
    """The CA bundle this machine's pip trusts (``PIP_CERT``, ``SSL_CERT_FILE``, else the
    system bundle): copied into each build context as ``build-ca.crt`` so that pip inside the
    build trusts what the host trusts (a TLS-inspecting proxy's CA, for instance)."""
    import ssl

    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        ssl.get_default_verify_paths().cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise _r.StandinBuildError("no CA bundle found for pip: apt-get install ca-certificates")


def _build_real(kind: str, ref: str, log: _r.Log) -> None:
    if kind in REAL_BASES:
        base = build_real_images(kinds=[REAL_BASES[kind]], log=log)[REAL_BASES[kind]]
    else:
        base = debian_base(log)
    with tempfile.TemporaryDirectory(prefix=f"rehearsal-{kind}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(_r.STANDINS_DIR / kind, context, symlinks=True)
        shutil.copy(build_ca_bundle(), context / "build-ca.crt")
        for extra in REAL_EXTRA_FILES.get(kind, []):
            shutil.copy2(extra, context / extra.name)
        _r._docker_build(context, ref, {"BASE": base, **REAL_KINDS[kind]})


def _root_kind(kind: str) -> str:
    while kind in REAL_BASES:
        kind = REAL_BASES[kind]
    return kind


def build_real_images(
    force: bool = False,
    kinds: Iterable[str] | None = None,
    log: _r.Log = print,
    jobs: int = 1,
) -> dict[str, str]:
    """Build the real-application images that are missing or whose inputs changed.

    Returns kind -> ``lakehouse-rehearsal/<kind>:<hash>`` (also tagged ``:rehearsal``).
    ``LAST_BUILD`` records "built" or "cached" per kind. With ``jobs`` > 1, images that do
    not build on each other (spark+hive, s3, superset, airflow) build side by side: their
    time goes mostly to downloads, so a cold build takes about as long as the longest one.
    """
    selected = list(kinds) if kinds is not None else list(REAL_KINDS)
    if jobs > 1 and len(selected) > 1:
        debian_base(log)  # the shared root once, before the chains start
        chains: dict[str, list[str]] = {}
        for kind in selected:
            chains.setdefault(_root_kind(kind), []).append(kind)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(build_real_images, force, c, log) for c in chains.values()]
            built = {k: v for f in futures for k, v in f.result().items()}
        return {kind: built[kind] for kind in selected}
    result: dict[str, str] = {}
    for kind in selected:
        if kind not in REAL_KINDS:
            raise KeyError(f"unknown real image kind {kind!r}; known: {sorted(REAL_KINDS)}")
        ref = f"{REAL_IMAGES[kind]}:{real_inputs_hash(kind)}"
        moving = f"{REAL_IMAGES[kind]}:{_r.MOVING_TAG}"
        existing = _r.image_id(ref)
        if existing and not force:
            if _r.image_id(moving) != existing:
                _r._tag(ref, moving)
            LAST_BUILD[kind] = "cached"
            log(f"{kind}: cached {ref}")
        else:
            log(f"{kind}: building {ref} (real application)")
            _build_real(kind, ref, log)
            _r._tag(ref, moving)
            _r._untag_stale(REAL_IMAGES[kind], keep={ref, moving})
            LAST_BUILD[kind] = "built"
            log(f"{kind}: built {ref}")
        result[kind] = ref
    return result


# --------------------------------------------------------------------------------------
# the real-tier override
# --------------------------------------------------------------------------------------

_REAL_HEADER = """\
# The real-application rehearsal layer (LAKEHOUSE_REHEARSAL_TIER=real with --rehearsal):
# used INSTEAD of compose/rehearsal.yaml.
#
# GENERATED from lakehouse_tasks/rehearsal_real.py (REAL_SERVICES); do not edit by hand:
#   python -m lakehouse_tasks.rehearsal override
#
# Services with a real image only swap the image: their entrypoint, command, environment,
# healthcheck, volumes and limits are exactly the real compose files' (the one exception is
# resource tuning: airflow-webserver runs one gunicorn worker). Every other service is on
# its stand-in, exactly as in compose/rehearsal.yaml.
"""


def render_real_override() -> str:
    """The text of compose/rehearsal.real.yaml."""
    lines = [_REAL_HEADER, "services:"]
    for name, spec in _r.SERVICE_STANDINS.items():
        if name in _r.PLUGIN_SERVICES or name in _r.OPTIONAL_SERVICES:
            continue
        if name in REAL_SERVICES:
            lines.append(f"  {name}:")
            lines.append(f"    image: {REAL_IMAGES[REAL_SERVICES[name]]}:{_r.MOVING_TAG}")
            lines.append("    build: !reset null")
            lines.append("    pull_policy: never")
            if name in REAL_ENVIRONMENT:
                lines.append("    environment:")
                for key, value in REAL_ENVIRONMENT[name].items():
                    lines.append(f'      {key}: "{value}"')
        else:
            lines.extend(_r.service_override_lines(name, spec))
    lines.append("")
    return "\n".join(lines)


def write_real_override() -> bool:
    text = render_real_override()
    if REAL_OVERRIDE_PATH.exists() and REAL_OVERRIDE_PATH.read_text() == text:
        return False
    REAL_OVERRIDE_PATH.write_text(text)
    return True
