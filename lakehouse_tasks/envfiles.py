"""Reading env files: the environments a project has (``env/<name>.env``) and one file's variables, parsed the way compose and python-dotenv read them."""

from __future__ import annotations

import io
import re
from pathlib import Path

from dotenv.parser import parse_stream

from .errors import ConfigError


def known_environments(root: Path) -> list[str]:
    """Names of the environments that have a tracked ``env/<name>.env`` file."""
    return sorted(
        p.name[: -len(".env")]
        for p in (root / "env").glob("*.env")
        if not p.name.endswith(".local.env")
    )


_LINE_NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)")


def _env_file_text(path: Path) -> str:
    """The text of an env file, which must be UTF-8: a UTF-16 or Latin-1 file is one sentence
    naming the file (and line) and the fix, never a traceback and never its content."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"Cannot read {path} ({exc.strerror}); check the path and permissions."
        ) from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise ConfigError(
            f"{path} is UTF-16 encoded, not UTF-8; save it as UTF-8 "
            f"(for example `iconv -f UTF-16 -t UTF-8 {path.name} > {path.name}.utf8`)."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (Latin-1?); save the file as UTF-8 "
            f"(for example `iconv -f LATIN1 -t UTF-8 {path.name} > {path.name}.utf8`)."
        ) from None


def read_env_file(path: Path) -> dict[str, str]:
    """Parse one dotenv file; a malformed line is an error naming the file, line and variable
    name (never the value: the line may hold a secret)."""
    text = _env_file_text(path)
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        line = binding.original.line + (len(original) - len(original.lstrip("\n")))
        if binding.error or (binding.key is not None and binding.value is None):
            match = _LINE_NAME.match(original.lstrip("\n"))
            if match is None:
                raise ConfigError(
                    f"{path}:{line}: malformed line; write it as NAME=value (or remove it)."
                )
            name = match.group(1)
            rest = original.lstrip("\n")[match.end() :].lstrip()
            if rest.startswith(":"):
                raise ConfigError(
                    f"{path}:{line}: {name} is written YAML-style (NAME: value); "
                    f"write it as {name}=value."
                )
            raise ConfigError(
                f"{path}:{line}: malformed line for {name}; write it as {name}=value "
                "(or remove it)."
            )
        if binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    return values
