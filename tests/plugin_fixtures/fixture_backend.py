"""A minimal PEP 517 build backend for the test plugin distributions (standard library only).

It builds a wheel holding the top-level modules listed in ``[tool.fixture-backend] modules``,
with the project's name, version and entry points from ``pyproject.toml``. It supports exactly
what the fixtures use; it is not a general build backend.
"""

from __future__ import annotations

import base64
import hashlib
import re
import tomllib
import zipfile
from pathlib import Path

TAG = "py3-none-any"


def _project() -> dict:
    return tomllib.loads(Path("pyproject.toml").read_text())


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    data = _project()
    project = data["project"]
    name, version = _normalise(project["name"]), project["version"]
    dist_info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for module in data["tool"]["fixture-backend"]["modules"]:
        files[f"{module}.py"] = Path(f"{module}.py").read_bytes()
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {version}\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: fixture_backend\nRoot-Is-Purelib: true\nTag: {TAG}\n"
    ).encode()
    groups = project.get("entry-points", {})
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in groups.items()
    )
    files[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    record = [_record_line(arc, content) for arc, content in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel_name = f"{name}-{version}-{TAG}.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w") as wheel:
        for arcname, content in files.items():
            wheel.writestr(arcname, content)
    return wheel_name
