"""Checks of the files a deploy reads: the secret files (present, private) and the TLS certificate and key (present, lasting at least CERT_MIN_DAYS more days)."""

from __future__ import annotations

import datetime as _dt
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..certificates import certificate_expiry
from ..checks import Check, failed, passed

if TYPE_CHECKING:
    from ..environment import Environment


#: Certificates expiring sooner than this fail preflight.
CERT_MIN_DAYS = 14


def secret_file_checks(env: Environment, extra: Iterable[Path] = ()) -> list[Check]:
    """In prod, files holding secrets must not be readable by group or others."""
    if env.name != "prod":
        return []
    tracked = env.root / "env" / f"{env.name}.env"
    paths = [p for p in (*env.files, *extra) if Path(p).resolve() != tracked.resolve()]
    checks: list[Check] = []
    for path in dict.fromkeys(Path(p) for p in paths):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            checks.append(
                failed(
                    f"permissions ({path.name})",
                    f"{path} holds secrets and is readable by others (mode {mode:04o})",
                    f"chmod 600 {path}",
                )
            )
        else:
            checks.append(passed(f"permissions ({path.name})", f"mode {mode:04o}"))
    return checks


def tls_checks(env: Environment, *, now: _dt.datetime | None = None) -> list[Check]:
    """Where HTTPS is enforced (or optional with certificates configured), the certificate
    and key exist and the certificate lasts at least :data:`CERT_MIN_DAYS` more days."""
    mode = (env.get("HTTPS_MODE") or "disabled").lower()
    cert_raw, key_raw = env.get("TLS_CERT_FILE") or "", env.get("TLS_KEY_FILE") or ""
    if mode == "disabled" or (mode == "optional" and not (cert_raw and key_raw)):
        return []
    checks: list[Check] = []

    def resolve(raw: str) -> Path:
        p = Path(raw).expanduser()
        return p if p.is_absolute() else env.root / p

    for var, raw in (("TLS_CERT_FILE", cert_raw), ("TLS_KEY_FILE", key_raw)):
        if not raw:
            checks.append(
                failed("tls files", f"HTTPS_MODE={mode} but {var} is not set", f"set {var}")
            )
        elif not resolve(raw).is_file():
            checks.append(
                failed(
                    "tls files",
                    f"{var}={raw} does not exist",
                    f"put the file there or fix {var}",
                )
            )
    if checks or not cert_raw:
        return checks
    cert = resolve(cert_raw)
    try:
        not_after = certificate_expiry(cert)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return [
            failed("tls certificate", f"cannot read {cert}: {exc}", "check it is a PEM certificate")
        ]
    now = now or _dt.datetime.now(_dt.UTC)
    days = (not_after - now).total_seconds() / 86400
    when = not_after.strftime("%Y-%m-%d")
    if days < 0:
        return [failed("tls certificate", f"{cert} expired on {when}", "renew the certificate")]
    if days < CERT_MIN_DAYS:
        return [
            failed(
                "tls certificate",
                f"{cert} expires on {when}, in {days:.0f} days (minimum {CERT_MIN_DAYS})",
                "renew the certificate",
            )
        ]
    return [passed("tls certificate", f"valid until {when} ({days:.0f} days)")]
