"""``plugins``: which plugins are active, where they come from and which hooks they implement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._base import lakehouse_task

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).
if TYPE_CHECKING:
    from ..hooks.types import PluginInfo
    from ..ui import Table


def plugins_table(infos: list[PluginInfo]) -> Table:
    from ..ui import Table

    rows: list[Mapping[str, Any]] = [
        {
            "name": info.name,
            "version": info.version,
            "source": info.source,
            "hooks": [h.removeprefix("lakehouse_") for h in info.hooks],
            "status": info.status,
            "detail": info.detail,
        }
        for info in infos
    ]
    return Table(
        columns=[
            ("name", "Plugin"),
            ("version", "Version"),
            ("source", "Source"),
            ("hooks", "Hooks"),
            ("status", "Status"),
            ("detail", "Detail"),
        ],
        rows=rows,
        title="Plugins",
        status_column="status",
        highlight=lambda row: "red" if row["status"] == "failed" else "",
    )


@lakehouse_task(
    name="plugins",
    help={
        "write_reference": "regenerate the hook reference in docs/PLUGINS.md from lakehouse_tasks/hooks/specs.py",
    },
)
def plugins(c: Any, json_: bool = False, write_reference: bool = False) -> None:
    """List the plugins (built-in, entry point, local): version, source, hooks, status."""
    from ..hooks.manager import get_plugin_manager
    from ..hooks.reference import write_hook_reference
    from ..paths import project_root
    from ..ui import Output

    out = Output(json_mode=json_)
    if write_reference:
        doc = project_root() / "docs" / "PLUGINS.md"
        changed = write_hook_reference(doc)
        out.success(f"{doc.name}: hook reference {'updated' if changed else 'already up to date'}")
        return
    infos = get_plugin_manager().describe()
    if json_:
        out.json([info.to_dict() for info in infos])
    else:
        out.table(plugins_table(infos))
