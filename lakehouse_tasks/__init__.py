"""lakehouse-ops: deploy and run the data lakehouse stack on Docker Compose.

The package root only exports what plugins need: the ``hookimpl`` marker (as in pluggy's
eggsample) and the version. Everything else lives in its own module.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: The project name pluggy uses for hook specifications, implementations and the
#: entry-point group that third-party plugins register under.
PROJECT_NAME = "lakehouse_tasks"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
