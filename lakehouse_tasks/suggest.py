"""The nearest known name to a typo, for error messages that say what was probably meant."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(name: str, known: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The known name closest to ``name`` (case-insensitive), ``None`` when nothing is close
    (``cutoff``: difflib's similarity ratio, 0.6 by default; higher is stricter)."""
    candidates = {k.lower(): k for k in known}
    match = difflib.get_close_matches(name.lower(), list(candidates), n=1, cutoff=cutoff)
    return candidates[match[0]] if match else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'X'?)"`` for the nearest known name, else the empty string."""
    match = nearest(name, known)
    return f" (did you mean {match!r}?)" if match else ""
