"""The compose files of the real-application rehearsal tier, generated from ``REAL_SERVICES``.

* ``compose/rehearsal.real.yaml``: used INSTEAD of ``compose/rehearsal.yaml``;
* ``compose/rehearsal.real.proxy.yaml``: used INSTEAD of ``compose/rehearsal.proxy.yaml`` where
  the environment's override defines the TLS proxy (staging's tls profile, prod).

A service with a real image only has its image swapped (plus the resource tuning of
``REAL_ENVIRONMENT``); every other service is on its stand-in, exactly as in the quick tier's
files. ``python -m lakehouse_tasks.rehearsal override`` writes both.
"""

from __future__ import annotations

from . import rehearsal as _r
from .rehearsal_real import REAL_ENVIRONMENT, REAL_IMAGES, REAL_SERVICES

REAL_OVERRIDE_PATH = _r.REPO_ROOT / "compose" / "rehearsal.real.yaml"
REAL_PROXY_OVERRIDE_PATH = _r.REPO_ROOT / "compose" / "rehearsal.real.proxy.yaml"

_REAL_HEADER = """\
# The real-application rehearsal layer (LAKEHOUSE_REHEARSAL_TIER=real with --rehearsal):
# used INSTEAD of compose/{quick}.
#
# GENERATED from lakehouse_tasks/rehearsal_real.py (REAL_SERVICES) by
# lakehouse_tasks/rehearsal_real_override.py; do not edit by hand:
#   python -m lakehouse_tasks.rehearsal override
#
# Services with a real image only swap the image: their entrypoint, command, environment,
# healthcheck, volumes and limits are exactly the real compose files' (the one exception is
# tuning for a loaded machine: airflow-webserver runs one gunicorn worker, not preloaded,
# see REAL_ENVIRONMENT). Every other service is on its stand-in, exactly as in
# compose/{quick}.
"""


def render_real_override(*, optional: bool = False) -> str:
    """The text of compose/rehearsal.real.yaml (with ``optional``: rehearsal.real.proxy.yaml)."""
    quick = "rehearsal.proxy.yaml" if optional else "rehearsal.yaml"
    lines = [_REAL_HEADER.format(quick=quick), "services:"]
    for name, spec in _r.SERVICE_STANDINS.items():
        if name in _r.PLUGIN_SERVICES or (name in _r.OPTIONAL_SERVICES) != optional:
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
    """Write both files of the real tier; True when one changed."""
    return _r.write_generated(
        (path, render_real_override(optional=optional))
        for path, optional in ((REAL_OVERRIDE_PATH, False), (REAL_PROXY_OVERRIDE_PATH, True))
    )
