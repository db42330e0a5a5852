"""The schema of environment variables (``env/variables.yaml``) and value parsing.

Each variable declares a type; :func:`parse_value` turns a string into a typed value or
raises ``ValueError`` with a short reason that the loader turns into a full sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

TYPES = frozenset(
    {"str", "int", "port", "bool", "cpu", "memory", "size", "duration", "enum", "secret", "path"}
)

#: Names that hold secrets when the schema does not say otherwise.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|CREDENTIAL|PRIVATE|(^|_)KEY$|ACCESS_KEY")

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$", re.IGNORECASE)
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Variable:
    """One declared variable."""

    name: str
    type: str = "str"
    required: bool = False
    description: str = ""
    used_by: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()

    @property
    def secret(self) -> bool:
        return self.type == "secret"


@dataclass(frozen=True)
class Schema:
    """Every declared variable, in file order."""

    variables: dict[str, Variable] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.variables

    def get(self, name: str) -> Variable | None:
        return self.variables.get(name)

    def is_secret(self, name: str) -> bool:
        var = self.variables.get(name)
        if var is not None:
            return var.secret
        return bool(SECRET_NAME.search(name))

    @property
    def required(self) -> list[str]:
        return [v.name for v in self.variables.values() if v.required]


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schema(path: Path) -> Schema:
    """Read ``env/variables.yaml``; a missing file is an empty schema."""
    if not path.exists():
        return Schema()
    try:
        # libyaml's loader when PyYAML has it: the pure-Python one took 60-160 ms for this
        # file, paid by every task that opens a project (docs/PERFORMANCE.md, health).
        raw = yaml.load(path.read_text(), Loader=_SAFE_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}); fix the file.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must map variable names to their declarations.")
    variables: dict[str, Variable] = {}
    for name, spec in raw.items():
        spec = spec or {}
        vtype = str(spec.get("type", "str"))
        if vtype not in TYPES:
            raise ConfigError(
                f"{path}: variable {name} has unknown type {vtype!r}; use one of "
                f"{', '.join(sorted(TYPES))}."
            )
        variables[str(name)] = Variable(
            name=str(name),
            type=vtype,
            required=bool(spec.get("required", False)),
            description=str(spec.get("description", "")),
            used_by=tuple(spec.get("used_by") or ()),
            choices=tuple(str(c) for c in (spec.get("choices") or ())),
        )
    return Schema(variables)


def parse_bool(value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("is not a boolean (use true or false)")


def parse_size(value: str) -> int:
    """Bytes of a compose-style size: ``512M``, ``4G``, ``5m``, ``1.5GiB``, ``1024``."""
    match = _SIZE.match(value.strip())
    if not match:
        raise ValueError("is not a size (use a number with an optional unit, like 512M or 4G)")
    number, unit, _ = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def parse_duration(value: str) -> float:
    """Seconds of a compose duration: ``15s``, ``1m30s``, ``500ms``."""
    text = value.strip()
    if not _DURATION.match(text):
        raise ValueError("is not a duration (use a number with a unit, like 15s or 2m)")
    return sum(float(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(text))


def parse_value(var: Variable, value: str) -> Any:
    """The typed value of ``value`` for ``var``; ``ValueError`` says what is wrong."""
    t = var.type
    if t == "int":
        try:
            return int(value)
        except ValueError:
            raise ValueError("is not a whole number") from None
    if t == "port":
        try:
            port = int(value)
        except ValueError:
            raise ValueError("is not a port number (use a whole number from 1 to 65535)") from None
        if not 1 <= port <= 65535:
            raise ValueError("is out of range (ports go from 1 to 65535)")
        return port
    if t == "bool":
        return parse_bool(value)
    if t == "cpu":
        try:
            cpus = float(value)
        except ValueError:
            raise ValueError("is not a CPU count (use a decimal like 0.5 or 2.0)") from None
        if cpus <= 0:
            raise ValueError("must be a positive CPU count")
        return cpus
    if t in ("memory", "size"):
        return parse_size(value)
    if t == "duration":
        return parse_duration(value)
    if t == "enum":
        if var.choices and value not in var.choices:
            raise ValueError(f"must be one of {', '.join(var.choices)}")
        return value
    return value
