"""The lists users type: ``--service a,b --service c`` and comma-separated variables
(``LAKEHOUSE_DISABLE_PLUGINS=alerts,offsite``). The one parser every flag and variable of
that shape goes through; it imports nothing of the package, so every layer may use it."""

from __future__ import annotations

from collections.abc import Iterable


def parse_names(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"a, b"`` or ``["a,b", " c "]`` as ``("a", "b", "c")``: split on commas, stripped,
    empty parts dropped, duplicates dropped, first-seen order kept. ``None`` is ``()``."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        names.extend(n.strip() for n in str(item).split(",") if n.strip())
    return tuple(dict.fromkeys(names))
