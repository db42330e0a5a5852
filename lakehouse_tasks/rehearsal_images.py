"""The rehearsal's stand-in images, built offline (issue 4): ``lakehouse-rehearsal/busybox``
(a ``FROM scratch`` image with the machine's static busybox and the stand-in program) and
``lakehouse-rehearsal/postgres`` (a real PostgreSQL 15 on a debootstrapped Debian root), each
tagged by a hash of its inputs and ``:rehearsal``; cached, rebuilt only when an input changes.

Docker is called through the engine package (:mod:`lakehouse_tasks.engine.images`: build,
import, tag, rmi); only the root file system tools (debootstrap, chroot, tar) run here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import subprocess
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
    """A failed docker command of a build as :class:`StandinBuildError`: the reason (the last
    line of its stderr) on the first line, the end of its stderr below."""
    try:
        yield
    except EngineError as exc:
        reason = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else exc.message
        raise StandinBuildError(f"{what} failed: {reason}\n{exc.stderr[-3000:]}") from None


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


def build_root_tarball(
    name: str, root_hash: str, packages_file: Path, script: str, log: Log, *, label: str
) -> Path:
    """A debootstrapped Debian root (minbase + ``packages_file``, then ``script`` run in it by
    chroot) as the tar file ``<name>-<root_hash>.tar``, cached under ~/.cache/lakehouse-ops/
    (older ``<name>-*.tar`` files are removed). ``label`` names the root in log lines and
    errors. Both tiers' roots are built here: the postgres stand-in and the real tier's
    Debian base."""
    cache = _cache_dir()
    tarball = cache / f"{name}-{root_hash}.tar"
    if tarball.is_file():
        log(f"{label}: cached {tarball.name}")
        return tarball
    if os.geteuid() != 0:
        raise StandinBuildError(f"debootstrap needs root to build the {label}")
    if shutil.which("debootstrap") is None:
        raise StandinBuildError("debootstrap is missing: apt-get install debootstrap")
    packages = _read_packages(packages_file)
    mirror = debian_mirror()
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=cache))
    try:
        rootfs = work / "rootfs"
        log(f"{label}: debootstrap {DEBIAN_SUITE} minbase + {','.join(packages)}")
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
        _run(["chroot", str(rootfs), "/bin/sh", "-c", script])
        # debootstrap can leave these mounted when it fails half-way; be tidy anyway.
        for sub in ("proc", "sys"):
            subprocess.run(["umount", "-l", str(rootfs / sub)], capture_output=True)
        partial = work / "root.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."])
        partial.rename(tarball)
        for old in cache.glob(f"{name}-*.tar"):
            if old != tarball:
                old.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


#: Run in the postgres root: the official image runs postgres as uid/gid 999 (the Debian user
#: is renumbered), and the entrypoint creates the cluster in $PGDATA (no default one).
_POSTGRES_ROOT_SCRIPT = r"""
set -e
old_uid=$(id -u postgres); old_gid=$(id -g postgres)
if [ "$old_uid" != 999 ]; then
  groupmod -g 999 postgres
  usermod -u 999 -g 999 postgres
  find / -xdev -uid "$old_uid" -exec chown -h 999 {} +
  find / -xdev -gid "$old_gid" -exec chgrp -h 999 {} +
fi
rm -rf /var/lib/postgresql/15 /etc/postgresql/15
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log
"""


def _postgres_root_tar(log: Log) -> Path:
    """The postgres stand-in's debootstrapped root (:func:`build_root_tarball`)."""
    return build_root_tarball(
        "postgres-root",
        _postgres_root_hash(),
        STANDINS_DIR / "postgres" / "packages.txt",
        _POSTGRES_ROOT_SCRIPT,
        log,
        label="postgres root",
    )


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
