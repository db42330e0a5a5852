"""lakehouse-ops plugin: Prometheus and Grafana for the lakehouse stack.

The hooks live in :mod:`lakehouse_monitoring.plugin` (the ``monitoring`` entry point of the
``lakehouse_tasks`` group); compose files and configuration ship as package data.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: The installed package directory: every mounted configuration file lives below it.
PACKAGE_DIR = Path(__file__).resolve().parent

__all__ = ["PACKAGE_DIR", "__version__"]
