"""Preflight: can this host run this environment? Each check is a small function returning
:class:`~lakehouse_tasks.checks.Check` values (pass / warn / fail with a one-line fix hint).

:func:`run_preflight` runs them all; deploy calls it before touching anything. A failed check
means exit 3 (``ExitCode.PREFLIGHT_FAILED``).

The package: ``host`` (engine, disk, resources, ports), ``config`` (compose config, images),
``files`` (secret files, TLS), ``run`` (all of them in order, and the verdict).
"""

from __future__ import annotations

from .config import (
    config_checks,
    image_checks,
)
from .files import (
    CERT_MIN_DAYS,
    secret_file_checks,
    tls_checks,
)
from .host import (
    DEFAULT_MIN_FREE_DISK_GB,
    GIB,
    disk_check,
    disk_checks,
    engine_checks,
    limit_variable,
    min_free_disk_gb,
    port_checks,
    port_is_free,
    resource_checks,
)
from .run import (
    plugin_checks,
    preflight_failed,
    run_preflight,
)

__all__ = [
    "CERT_MIN_DAYS",
    "DEFAULT_MIN_FREE_DISK_GB",
    "GIB",
    "config_checks",
    "disk_check",
    "disk_checks",
    "engine_checks",
    "image_checks",
    "limit_variable",
    "min_free_disk_gb",
    "plugin_checks",
    "port_checks",
    "port_is_free",
    "preflight_failed",
    "resource_checks",
    "run_preflight",
    "secret_file_checks",
    "tls_checks",
]
