"""The values hooks carry besides the core types: a leaf that imports nothing of the package.

Plugins get them from :mod:`lakehouse_tasks.plugin`; :mod:`lakehouse_tasks.hooks.specs` names
them in its annotations and :mod:`lakehouse_tasks.hooks.manager` checks what plugins return
against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AccessURL:
    """Where a person opens one web interface of the stack. ``service`` is the compose service
    that serves it (``health`` fills its URL column by it); empty for an interface of no one
    service."""

    name: str
    url: str
    note: str = ""
    service: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "url": self.url, "note": self.note, "service": self.service}


@dataclass(frozen=True)
class ExtraArtefact:
    """A file a plugin wrote into a backup's ``workdir``; the backup checksums and records it.

    ``kind`` says what it is (``"grafana-dashboards"``, ``"prometheus-snapshot"``), so a
    restore can tell artefacts apart.
    """

    name: str
    path: Path
    kind: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "path": str(self.path), "kind": self.kind}


@dataclass(frozen=True)
class BackupCopy:
    """A copy of one backup kept elsewhere by a plugin (``lakehouse_backup_copies``).

    ``location`` names the kind of place (``"off-site"``); ``ref`` is the plugin's own handle
    (a restic snapshot id); ``time`` is when the backup was taken (its manifest's time).
    """

    backup_id: str
    location: str
    ref: str
    time: Any  # datetime.datetime (aware)
    size: int = 0
    plugin: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "location": self.location,
            "ref": self.ref,
            "time": self.time.isoformat() if hasattr(self.time, "isoformat") else str(self.time),
            "size": self.size,
            "plugin": self.plugin,
        }


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as ``invoke plugins`` shows it."""

    name: str
    version: str
    source: str  # built-in | entry point | local
    hooks: tuple[str, ...] = ()
    status: str = "active"  # active | disabled | failed
    detail: str = ""  # the distribution, or why it is disabled / failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "hooks": list(self.hooks),
            "status": self.status,
            "detail": self.detail,
        }


__all__ = ["AccessURL", "BackupCopy", "ExtraArtefact", "PluginInfo"]
