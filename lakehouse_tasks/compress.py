"""How volume archives are compressed: zstd when Debian's ``zstd`` program is there, else gzip.

``zstd -1 -T0`` compresses on every core in its own process (the reading, hashing and writing
stay in the tool's thread) and passes incompressible data (parquet, random bytes) through at
disk speed; ``gzip -1`` spent about 38 s on 1 GiB of such data here (docs/PERFORMANCE.md). The
``zstd`` program comes from Debian's own ``zstd`` package (kept by Debian, already a
dependency of the base system's tools on the project's machines), so no Python package is
added. A backup names its compression per artefact in the manifest; restores read both, so old
``.tar.gz`` backups keep working. ``LAKEHOUSE_BACKUP_COMPRESSION=gzip`` keeps writing gzip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import ConfigError
from .pipes import producing

ENV_VAR = "LAKEHOUSE_BACKUP_COMPRESSION"


@dataclass(frozen=True)
class Codec:
    name: str  # the manifest's "compression" value
    suffix: str  # of a volume archive
    compress: tuple[str, ...]  # argv: stdin -> stdout
    decompress: tuple[str, ...]


ZSTD = Codec("zstd", ".tar.zst", ("zstd", "-1", "-T0", "-q", "-c"), ("zstd", "-d", "-q", "-c"))
GZIP = Codec("gzip", ".tar.gz", ("gzip", "-1", "-n", "-c"), ("gzip", "-d", "-c"))


def for_archives() -> Codec:
    """The codec new volume archives are written with."""
    wanted = os.environ.get(ENV_VAR, "").strip().lower()
    if wanted == "gzip":
        return GZIP
    if wanted not in ("", "zstd"):
        raise ConfigError(f"{ENV_VAR}={wanted!r} is not a compression; use zstd or gzip.")
    return ZSTD if shutil.which("zstd") else GZIP


def decompress_argv(compression: str) -> list[str]:
    """The program that reads an artefact written with ``compression`` (zstd needs ``zstd``)."""
    if compression == "zstd":
        path = shutil.which("zstd")
        if path is None:
            raise ConfigError(
                "This backup's volume archives are zstd-compressed and no `zstd` program is "
                "installed; install it (Debian: apt-get install zstd) and run the restore again."
            )
        return [path, *ZSTD.decompress[1:]]
    raise ValueError(f"no external decompressor for {compression!r}")


@contextlib.contextmanager
def open_tar_stream(path: str | os.PathLike[str], compression: str) -> Iterator[tarfile.TarFile]:
    """A volume archive opened as a tar stream, whatever it was compressed with.

    gzip and plain tar are read by :mod:`tarfile` itself; zstd through the ``zstd`` program, so
    the archive is decompressed on its own core while the caller hashes or counts members. A
    decompressor that fails raises :class:`OSError` with its message after the stream is read.
    """
    if compression in ("gzip", "none"):
        with tarfile.open(path, mode="r|gz" if compression == "gzip" else "r|") as archive:
            yield archive
        return
    with (
        open(path, "rb") as fh,
        producing(decompress_argv(compression), stdin=fh) as unpack,
        tarfile.open(fileobj=unpack.stdout, mode="r|") as archive,
    ):
        yield archive
    if unpack.failed():
        raise OSError(unpack.error_text() or f"exit code {unpack.returncode}")
