"""Who may read the page when it listens beyond loopback: one token per state directory.

The token is 32 random bytes (URL-safe text) in ``<state dir>/serve/token``, created 0600 in
a 0700 directory by ``invoke serve --new-token``; it is never printed in full (only its first
four characters, to tell two apart) and never accepted in a URL, because URLs end up in
access logs, browser history and proxies. A client proves it knows the token either with an
``Authorization: Bearer`` header (scripts, Prometheus' ``credentials_file``) or with the
session cookie the one-time sign-in form sets: an HMAC of the token, so the cookie itself is
not the token, ``HttpOnly`` and ``SameSite=Strict``.

Prometheus gets a credential of its own that opens ``/metrics`` and nothing else: the scrape
token in ``<state dir>/serve-scrape/token``, 0600 in a 0700 directory like the other, but owned
by the uid the Prometheus image runs as (65534, ``nobody``) so the monitoring plugin can mount
that directory into the container and point ``credentials_file`` at it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ExitCode, LakehouseError
from ..paths import state_dir, write_atomic

TOKEN_FILE = "token"
COOKIE_NAME = "lakehouse_session"
MIN_TOKEN_LENGTH = 32
SCRAPE_DIR = "serve-scrape"
#: The user of the prom/prometheus image (``nobody``): the owner of the scrape token.
PROMETHEUS_UID = 65534


def serve_dir(root: Path) -> Path:
    path = state_dir(root) / "serve"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def token_path(root: Path) -> Path:
    return serve_dir(root) / TOKEN_FILE


def _give_to_prometheus(path: Path) -> None:
    """Owned by the Prometheus image's user when this process may hand it over (root)."""
    if os.geteuid() == 0:
        os.chown(path, PROMETHEUS_UID, PROMETHEUS_UID)


def scrape_dir(root: Path) -> Path:
    """The directory the monitoring plugin mounts into Prometheus (0700, its user's)."""
    path = state_dir(root) / SCRAPE_DIR
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    _give_to_prometheus(path)
    return path


def scrape_token_path(root: Path) -> Path:
    return scrape_dir(root) / TOKEN_FILE


def _write_secret(path: Path, value: str) -> None:
    write_atomic(path, value + "\n", mode=0o600)


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP or ``localhost``) only accepts connections from this host."""
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def check_address(address: str) -> str:
    """``address`` if it is an IP address or ``localhost``; else one sentence (exit 2)."""
    text = address.strip().strip("[]")
    if text.lower() == "localhost":
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(
            f"--bind takes an IP address such as 127.0.0.1 or 0.0.0.0, not {address!r}."
        ) from None
    return text


def hint(token: str) -> str:
    """What may be shown of a token: its first four characters."""
    return token[:4] + "…"


def new_token(root: Path) -> tuple[Path, str]:
    """Write a fresh token and a fresh scrape token (0600, each replacing the old one
    atomically); return the token's path and hint."""
    path = token_path(root)
    token = secrets.token_urlsafe(32)
    _write_secret(path, token)
    scrape = scrape_token_path(root)
    _write_secret(scrape, secrets.token_urlsafe(32))
    _give_to_prometheus(scrape)
    return path, hint(token)


def load_scrape_token(root: Path) -> str | None:
    """The scrape token (``None`` when none was made or it is unusable: /metrics then takes
    the main token only)."""
    path = state_dir(root) / SCRAPE_DIR / TOKEN_FILE
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            return None
        token = path.read_text().strip()
    except OSError:
        return None
    return token if len(token) >= MIN_TOKEN_LENGTH else None


def load_token(root: Path) -> str | None:
    """The token, or ``None`` when none was made. A token file others can read, or one that is
    too short to be a token, is refused with one sentence (exit 3 and 2)."""
    path = token_path(root)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_IMODE(mode) & 0o077:
        raise LakehouseError(
            f"The serve token {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}` or make a new one with --new-token.",
            ExitCode.PREFLIGHT_FAILED,
        )
    token = path.read_text().strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            f"The serve token {path} is not a token this tool made (too short); make a new one "
            "with --new-token."
        )
    return token


@dataclass(frozen=True)
class Gate:
    """The access rule of one server: open (loopback) or the token's; the scrape token opens
    ``/metrics`` only."""

    token: str | None
    scrape_token: str | None = None

    @property
    def open(self) -> bool:
        return self.token is None

    def cookie_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"lakehouse-serve-session", hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        if self.token is None:
            return True
        return hmac.compare_digest(candidate.strip().encode(), self.token.encode())

    def allows(self, authorization: str | None, cookie: str | None) -> bool:
        if self.token is None:
            return True
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and self.token_matches(value):
                return True
        return bool(cookie) and hmac.compare_digest(str(cookie), self.cookie_value())

    def allows_metrics(self, authorization: str | None, cookie: str | None) -> bool:
        if self.allows(authorization, cookie):
            return True
        scheme, _, value = (authorization or "").partition(" ")
        return (
            self.scrape_token is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(value.strip().encode(), self.scrape_token.encode())
        )
