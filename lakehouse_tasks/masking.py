"""Secret values out of text: the one mask and the one scrubber (env values, audit records,
the status page, log lines all go through it). Imports nothing of the package."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "********"
#: Shorter values are not scrubbed from free text: they would mask ordinary words.
MIN_SCRUB_LENGTH = 4


class Scrubber:
    """``scrubber(text)``: ``text`` with every secret value replaced by :data:`MASK`, longest
    first (a secret that contains another is masked whole). Built once per set of values, so a
    caller scrubbing thousands of strings sorts the values once."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values: tuple[str, ...] = tuple(
            sorted({v for v in values if v and len(v) >= MIN_SCRUB_LENGTH}, key=len, reverse=True)
        )

    def __call__(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return text
