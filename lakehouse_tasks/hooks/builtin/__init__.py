"""The host's own behaviour, written as plugins (like ``lib.py`` in pluggy's eggsample).

Each module here implements hooks with the same ``hookimpl`` marker a third-party plugin
uses, and is registered first under the name below. Block one with
``LAKEHOUSE_DISABLE_PLUGINS=<name>`` and register your own to replace it.
"""

from __future__ import annotations

from . import access_urls, event_log


def builtin_plugins() -> list[tuple[str, object]]:
    """(name, plugin) of every built-in plugin, in registration order."""
    return [
        ("lakehouse.access_urls", access_urls),
        ("lakehouse.event_log", event_log.EventLog()),
    ]


__all__ = ["builtin_plugins"]
