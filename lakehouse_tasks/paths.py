"""Where the project's files live.

The tool works on a *project directory* holding ``compose/`` and ``env/``. It is, in order:
the ``LAKEHOUSE_HOME`` environment variable, the nearest parent of the working directory that
has both folders, or the checkout this package was imported from.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

from .errors import ConfigError, LakehouseError


def _is_project(path: Path) -> bool:
    return (path / "compose").is_dir() and (path / "env").is_dir()


def project_root(start: Path | None = None) -> Path:
    """Return the project directory (see the module docstring)."""
    explicit = os.environ.get("LAKEHOUSE_HOME")
    if explicit:
        root = Path(explicit).expanduser().resolve()
        if not _is_project(root):
            raise ConfigError(
                f"LAKEHOUSE_HOME={root} has no compose/ and env/ folders; "
                "point it at a lakehouse-ops checkout."
            )
        return root
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if _is_project(candidate):
            return candidate
    package_checkout = Path(__file__).resolve().parent.parent
    if _is_project(package_checkout):
        return package_checkout
    raise ConfigError(
        f"No lakehouse project found from {here}: run the command inside a lakehouse-ops "
        "checkout or set LAKEHOUSE_HOME."
    )


def state_dir_path(root: Path) -> Path:
    """Where the tool keeps its state (``LAKEHOUSE_STATE_DIR``, else ``<root>/.lakehouse``),
    without creating it."""
    return Path(os.environ.get("LAKEHOUSE_STATE_DIR", root / ".lakehouse"))


def state_dir(root: Path) -> Path:
    """The tool's own state (locks, history, audit log), kept beside the project, untracked.
    A directory that cannot be created is a :class:`StateDirError` (exit 2)."""
    path = state_dir_path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from .errors import StateDirError

        raise StateDirError(path, exc.strerror or type(exc).__name__) from None
    return path


def state_dir_failure(exc: OSError) -> LakehouseError | None:
    """A :class:`StateDirError` for an ``OSError`` on a path inside the state directory (a
    read-only directory), ``None`` for any other ``OSError``."""
    if not exc.filename:
        return None
    try:
        root = project_root()
    except LakehouseError:
        return None
    base = state_dir_path(root).absolute()
    failed = Path(os.fsdecode(exc.filename)).absolute()
    if failed != base and base not in failed.parents:
        return None
    from .errors import StateDirError

    return StateDirError(base, exc.strerror or type(exc).__name__)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit(root: Path, *, mark_dirty: bool = False) -> str | None:
    """The commit checked out in ``root`` (``None`` outside a git checkout); with
    ``mark_dirty``, suffixed ``+dirty`` when tracked files have uncommitted changes."""
    head = _git(root, "rev-parse", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return None
    commit = head.stdout.strip()
    if mark_dirty:
        status = _git(root, "status", "--porcelain", "--untracked-files=no")
        if status is not None and status.returncode == 0 and status.stdout.strip():
            commit += "+dirty"
    return commit


def write_atomic(path: Path, text: str, *, mode: int | None = None, fsync: bool = False) -> None:
    """Write ``text`` to ``path`` all at once: a temporary file in the same directory, then a
    rename over ``path``, so a reader sees the old file or the new one, never half of one (and a
    killed writer leaves no partial file behind). ``mode`` (for example ``0o600``) is set on the
    temporary file before it becomes visible; ``fsync`` flushes it to disk first (a manifest
    that must survive a power cut)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
