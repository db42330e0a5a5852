"""Findings on the credentials, the files that hold them, and TLS: placeholder, default and short secrets, env file and secret file permissions, the certificate's presence and expiry."""

from __future__ import annotations

import datetime as _dt
import stat
from pathlib import Path

from ..certificates import certificate_expiry
from ..checks import Check, failed, passed, warned
from ..environment import (
    MIN_PROD_SECRET_LENGTH,
    NON_DEV_ENVIRONMENTS,
    PLACEHOLDER,
    STRICT_SECRET_ENVIRONMENTS,
    WELL_KNOWN_DEFAULTS,
    Environment,
)
from .model import Finding

#: A certificate closer than this to its expiry is a warning.
CERT_WARN_DAYS = 30


def credential_findings(env: Environment) -> list[Finding]:
    """Placeholders, well-known defaults and (in prod) short values; names only, never values."""
    placeholder, default, short, ok = [], [], [], []
    for key, value in sorted(env.values.items()):
        if not env.is_secret(key) or not value:
            continue
        if PLACEHOLDER in value:
            placeholder.append(key)
        elif value.strip().lower() in WELL_KNOWN_DEFAULTS:
            default.append(key)
        elif len(value) < MIN_PROD_SECRET_LENGTH:
            short.append(key)
        else:
            ok.append(key)
    fix = f"run `invoke secrets.generate --env {env.name}`"
    findings: list[Finding] = []
    if placeholder:
        findings.append(
            Finding(
                "credentials",
                failed(
                    "no placeholders",
                    f"{PLACEHOLDER} left in {', '.join(placeholder)}",
                    fix,
                ),
                "environment",
            )
        )
    else:
        findings.append(Finding("credentials", passed("no placeholders"), "environment"))
    if default:
        detail = f"well-known default values in {', '.join(default)}"
        findings.append(
            Finding(
                "credentials",
                failed("no default credentials", detail, f"{fix} --rotate {','.join(default)}")
                if env.name in NON_DEV_ENVIRONMENTS
                else warned(
                    "no default credentials",
                    detail + " (expected in dev only)",
                    "never reuse dev credentials elsewhere",
                ),
                "environment",
            )
        )
    else:
        findings.append(Finding("credentials", passed("no default credentials"), "environment"))
    if short:
        detail = f"shorter than {MIN_PROD_SECRET_LENGTH} characters: {', '.join(short)}"
        check = (
            failed("strong secrets", detail, f"{fix} --rotate {','.join(short)}")
            if env.name in STRICT_SECRET_ENVIRONMENTS
            else warned("strong secrets", detail, f"{fix} --rotate {','.join(short)}")
        )
        findings.append(Finding("credentials", check, "environment"))
    else:
        findings.append(
            Finding(
                "credentials",
                passed("strong secrets", f"{len(ok)} secrets of {MIN_PROD_SECRET_LENGTH}+ chars"),
                "environment",
            )
        )
    return findings


def _private(path: Path) -> bool:
    return not (path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def file_findings(env: Environment) -> list[Finding]:
    """Every layered env file that sets a secret (the local file, ``--env-file`` files) and
    the TLS key must be readable by its owner only (mode 0600)."""
    tracked = env.root / "env" / f"{env.name}.env"
    findings: list[Finding] = []
    for path in env.files:
        if path == tracked or not path.exists():
            continue
        try:
            text = path.read_text()
        except OSError:
            continue
        holds_secret = any(
            line.split("=", 1)[0].strip().removeprefix("export ").strip()
            and env.is_secret(line.split("=", 1)[0].strip().removeprefix("export ").strip())
            for line in text.splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        )
        if not holds_secret:
            continue
        findings.append(Finding("files", _mode_check(path, "env file"), "environment"))
    key = env.get("TLS_KEY_FILE") or ""
    if key and (env.get("HTTPS_MODE") or "disabled").lower() != "disabled":
        key_path = _resolve(env, key)
        if key_path.exists():
            findings.append(Finding("files", _mode_check(key_path, "TLS key"), "environment"))
    return findings


def _mode_check(path: Path, what: str) -> Check:
    mode = stat.S_IMODE(path.stat().st_mode)
    name = f"{what} {path.name} private"
    if _private(path):
        return passed(name, f"mode {mode:04o}")
    return failed(
        name,
        f"{path} is readable by others (mode {mode:04o})",
        f"chmod 600 {path}",
    )


def _resolve(env: Environment, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else env.root / path


def tls_findings(env: Environment, *, now: _dt.datetime | None = None) -> list[Finding]:
    """HTTPS_MODE and, unless TLS is disabled, the certificate's presence and expiry."""
    now = now or _dt.datetime.now(_dt.UTC)
    mode = (env.get("HTTPS_MODE") or "disabled").lower()
    strict = env.name in NON_DEV_ENVIRONMENTS
    findings: list[Finding] = []
    if mode == "enforced":
        findings.append(
            Finding("tls", passed("HTTPS enforced", "HTTPS_MODE=enforced"), "environment")
        )
    elif mode == "optional":
        findings.append(
            Finding(
                "tls",
                warned(
                    "HTTPS enforced",
                    "HTTPS_MODE=optional: the UIs also answer plain HTTP",
                    "set HTTPS_MODE=enforced",
                ),
                "environment",
            )
        )
    else:
        detail = "HTTPS_MODE=disabled: credentials cross the network in clear text"
        hint = "set HTTPS_MODE=enforced with TLS_CERT_FILE and TLS_KEY_FILE"
        findings.append(
            Finding(
                "tls",
                failed("HTTPS enforced", detail, hint)
                if strict
                else warned("HTTPS enforced", detail + " (expected in dev)", hint),
                "environment",
            )
        )
        return findings
    cert = env.get("TLS_CERT_FILE") or ""
    name = "certificate valid"
    if not cert:
        findings.append(
            Finding(
                "tls", failed(name, "TLS_CERT_FILE is not set", "set TLS_CERT_FILE"), "environment"
            )
        )
        return findings
    path = _resolve(env, cert)
    if not path.exists():
        missing = failed(
            name,
            f"certificate {cert} does not exist",
            "install the certificate there, or point TLS_CERT_FILE at it",
        )
        findings.append(Finding("tls", missing, "environment"))
        return findings
    try:
        expiry = certificate_expiry(path)
    except ValueError as exc:
        findings.append(
            Finding(
                "tls",
                failed(name, f"cannot read {cert}: {exc}", "point TLS_CERT_FILE at a PEM file"),
                "environment",
            )
        )
        return findings
    days = (expiry - now).total_seconds() / 86400
    when = expiry.date().isoformat()
    if days < 0:
        check = failed(name, f"expired on {when}", "renew the certificate")
    elif days < CERT_WARN_DAYS:
        check = warned(name, f"expires in {int(days)} days ({when})", "renew the certificate soon")
    else:
        check = passed(name, f"expires {when} (in {int(days)} days)")
    findings.append(Finding("tls", check, "environment"))
    return findings
