"""Superset configuration for the lakehouse stack.

Every switch that differs between environments comes from the container environment (set by
compose from env/<env>.env), so this one file serves dev, staging and prod. Secrets come from
the file named by ``<NAME>_FILE`` (a compose secret, staging and prod) or else from ``<NAME>``
in the environment (dev).
"""

import logging
import os
from datetime import timedelta


def _flag(name: str, default: bool) -> bool:
    """Read a boolean environment switch ("true"/"1"/"yes" are true)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret(name: str) -> str:
    """A secret from the file named by NAME_FILE, else from NAME; missing is an error."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\n")
    return os.environ[name]


# A missing secret must stop Superset, never fall back to the well-known default key.
SECRET_KEY = _secret("SUPERSET_SECRET_KEY")

SQLALCHEMY_DATABASE_URI = "postgresql+psycopg2://{user}:{password}@{host}:5432/{name}".format(
    user=os.environ.get("SUPERSET_DB_USER", "superset"),
    password=_secret("SUPERSET_DB_PASSWORD"),
    host=os.environ.get("SUPERSET_DB_HOST", "superset-db"),
    name=os.environ.get("SUPERSET_DB_NAME", "superset"),
)

DEBUG = _flag("DEBUG", False)
FLASK_DEBUG = DEBUG
LOG_LEVEL = getattr(logging, os.environ.get("LOG_LEVEL", "INFO").upper(), logging.INFO)

# Session and CSRF hardening; prod turns SESSION_COOKIE_SECURE on (TLS terminates at the proxy).
SESSION_COOKIE_SECURE = _flag("SESSION_COOKIE_SECURE", False)
SESSION_COOKIE_HTTPONLY = _flag("SESSION_COOKIE_HTTPONLY", True)
SESSION_COOKIE_SAMESITE = os.environ.get("SESSION_COOKIE_SAMESITE", "Lax")
WTF_CSRF_ENABLED = _flag("WTF_CSRF_ENABLED", True)
PERMANENT_SESSION_LIFETIME = timedelta(minutes=int(os.environ.get("SESSION_LIFETIME_MINUTES", "30")))

# Behind the TLS proxy the original scheme/host arrive in X-Forwarded-* headers.
ENABLE_PROXY_FIX = _flag("ENABLE_PROXY_FIX", False)

# Superset's home (uploads, cache) lives on the superset-home volume.
DATA_DIR = "/app/superset_home"
