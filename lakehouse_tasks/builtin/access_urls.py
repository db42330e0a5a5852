"""Built-in plugin ``lakehouse.access_urls``: the URLs of the stack's web interfaces.

Derived from the environment alone (no engine needed): each interface's published ``*_PORT``
variable, ``BIND_ADDRESS`` and ``HTTPS_MODE``.

* The host is ``BIND_ADDRESS``, except that a wildcard bind (``0.0.0.0``, ``::`` or empty)
  is shown as ``localhost``, the address that works from the host itself.
* ``HTTPS_MODE=enforced``: the TLS proxy terminates HTTPS on each interface's published port
  (the services themselves are only reachable inside the compose network), so every URL is
  ``https://``. ``optional`` keeps ``http://`` and says HTTPS is also served when certificates
  are configured; ``disabled`` is plain ``http://``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import hookimpl
from ..plugins import AccessURL

if TYPE_CHECKING:
    from ..environment import Environment

#: (interface, port variable, default port from the base compose file, path).
INTERFACES: tuple[tuple[str, str, int, str], ...] = (
    ("MinIO console", "MINIO_CONSOLE_PORT", 9001, "/"),
    ("Spark UI", "SPARK_MASTER_UI_PORT", 8080, "/"),
    ("Trino", "TRINO_PORT", 8086, "/ui/"),
    ("Superset", "SUPERSET_PORT", 8088, "/"),
    ("Airflow", "AIRFLOW_PORT", 8089, "/"),
)

WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


def public_host(bind_address: str | None) -> str:
    """The host name a person uses to reach ports published on ``bind_address``."""
    address = (bind_address or "").strip()
    if address in WILDCARD_ADDRESSES:
        return "localhost"
    if ":" in address and not address.startswith("["):  # a literal IPv6 address
        return f"[{address}]"
    return address


def access_urls_for(env: Environment) -> list[AccessURL]:
    """The built-in interfaces' URLs for ``env``."""
    host = public_host(env.get("BIND_ADDRESS", "127.0.0.1"))
    mode = (env.get("HTTPS_MODE") or "disabled").strip().lower()
    scheme = "https" if mode == "enforced" else "http"
    if mode == "enforced":
        note = "through the TLS proxy"
    elif mode == "optional":
        note = "HTTPS also served by the TLS proxy when certificates are configured"
    else:
        note = ""
    urls = []
    for name, variable, default, path in INTERFACES:
        port = (env.get(variable) or str(default)).strip()
        urls.append(AccessURL(name, f"{scheme}://{host}:{port}{path}", note))
    return urls


@hookimpl
def lakehouse_access_urls(env: Environment) -> list[AccessURL]:
    return access_urls_for(env)
