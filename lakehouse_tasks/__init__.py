"""lakehouse-ops: deploy and run the data lakehouse stack on Docker Compose.

The package root only exports what plugins need: the ``hookimpl`` marker (as in pluggy's
eggsample) and the version. Everything else lives in its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._moved import install as _install_moved_paths

__version__ = "0.1.0"

#: The project name pluggy uses for hook specifications, implementations and the
#: entry-point group that third-party plugins register under.
PROJECT_NAME = "lakehouse_tasks"

# Old import paths of moved modules keep working for one release (lakehouse_tasks/_moved.py).
_install_moved_paths()

if TYPE_CHECKING:
    import pluggy

    hookimpl: pluggy.HookimplMarker


def __getattr__(name: str) -> Any:
    """``hookimpl`` is made on first use (PEP 562): importing pluggy (and importlib.metadata
    with it) costs about 20 ms, which every CLI start-up paid although only plugin loading
    needs the marker. ``from lakehouse_tasks import hookimpl`` works as before."""
    if name == "hookimpl":
        import pluggy

        marker = pluggy.HookimplMarker(PROJECT_NAME)
        globals()["hookimpl"] = marker
        return marker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
