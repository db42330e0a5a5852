"""Built-in plugin ``lakehouse.access_urls``: the URLs of the stack's web interfaces.

Derived from the environment alone (no engine needed): each interface's published ``*_PORT``
variable, ``BIND_ADDRESS`` and ``HTTPS_MODE``.

* The host is ``BIND_ADDRESS``, except that a wildcard bind (``0.0.0.0``, ``::`` or empty)
  is shown as ``localhost``, the address that works from the host itself.
* ``HTTPS_MODE=enforced`` (prod): the TLS proxy terminates HTTPS on each interface's
  ``*_TLS_PORT`` on ``PROXY_BIND_ADDRESS`` (the services themselves publish nothing), so every
  URL is ``https://`` to the proxy. ``optional`` (staging) keeps the plain ``http://`` URL
  and names the proxy's ``https://`` URL in the note when certificates are configured;
  ``disabled`` is plain ``http://``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ... import hookimpl
from ..types import AccessURL

if TYPE_CHECKING:
    from ...environment import Environment

#: (interface, port variable, default port from the base compose file, path, TLS port
#: variable of the proxy, compose service serving it).
INTERFACES: tuple[tuple[str, str, int, str, str, str], ...] = (
    ("MinIO console", "MINIO_CONSOLE_PORT", 9001, "/", "MINIO_CONSOLE_TLS_PORT", "minio"),
    ("Spark UI", "SPARK_MASTER_UI_PORT", 8080, "/", "SPARK_MASTER_UI_TLS_PORT", "spark-master"),
    ("Trino", "TRINO_PORT", 8086, "/ui/", "TRINO_TLS_PORT", "trino"),
    ("Superset", "SUPERSET_PORT", 8088, "/", "SUPERSET_TLS_PORT", "superset"),
    ("Airflow", "AIRFLOW_PORT", 8089, "/", "AIRFLOW_TLS_PORT", "airflow-webserver"),
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
    proxy_host = public_host(env.get("PROXY_BIND_ADDRESS", "0.0.0.0"))
    mode = (env.get("HTTPS_MODE") or "disabled").strip().lower()
    certificates = bool(env.get("TLS_CERT_FILE") and env.get("TLS_KEY_FILE"))
    urls = []
    for name, variable, default, path, tls_variable, service in INTERFACES:
        port = (env.get(variable) or str(default)).strip()
        tls_port = (env.get(tls_variable) or port).strip()
        https = f"https://{proxy_host}:{tls_port}{path}"
        if mode == "enforced":
            urls.append(AccessURL(name, https, "through the TLS proxy", service))
        elif mode == "optional" and certificates:
            urls.append(AccessURL(name, f"http://{host}:{port}{path}", f"HTTPS: {https}", service))
        else:
            urls.append(AccessURL(name, f"http://{host}:{port}{path}", "", service))
    return urls


@hookimpl
def lakehouse_access_urls(env: Environment) -> list[AccessURL]:
    return access_urls_for(env)
