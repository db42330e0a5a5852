"""What the JSON writers print."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from pathlib import Path

import pytest

from lakehouse_tasks.ui import json_line, to_jsonable


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Row:
    name: str
    at: dt.datetime
    where: Path
    tags: frozenset[str]


def test_json_line_writes_what_to_jsonable_writes() -> None:
    record = {
        "rows": [Row("a", dt.datetime(2026, 12, 2, 12, 0), Path("/x"), frozenset({"t"}))],
        "colour": Colour.RED,
        "n": [1, 2.5, None, True],
        "pair": ("x", "y"),
    }
    line = json_line(record)
    assert "\n" not in line
    assert json.loads(line) == json.loads(json.dumps(to_jsonable(record)))
    assert json.loads(line)["rows"][0] == {
        "name": "a",
        "at": "2026-12-02T12:00:00",
        "where": "/x",
        "tags": ["t"],
    }


def test_json_line_refuses_what_it_cannot_write() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        json_line({"x": object()})
