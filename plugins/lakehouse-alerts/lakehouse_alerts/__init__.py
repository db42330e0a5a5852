"""lakehouse-ops plugin: deliver lakehouse events to notification channels through Apprise.

The hooks live in :mod:`lakehouse_alerts.plugin` (the ``alerts`` entry point of the
``lakehouse_tasks`` group).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
