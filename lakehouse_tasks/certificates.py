"""The one reader of a certificate's expiry, shared by preflight (the deploy gate) and
security (the findings): ``openssl x509 -enddate``, so no crypto library is a dependency."""

from __future__ import annotations

import datetime as _dt
import shutil
import subprocess
from pathlib import Path


def certificate_expiry(path: Path) -> _dt.datetime:
    """The ``notAfter`` of a PEM certificate (UTC).

    Raises ``ValueError`` with one line saying why when openssl is missing, does not answer
    within 10 s, or cannot read the file as a certificate."""
    if shutil.which("openssl") is None:
        raise ValueError("the openssl command is not installed")
    try:
        proc = subprocess.run(
            ["openssl", "x509", "-enddate", "-noout", "-in", str(path)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ValueError(f"openssl failed: {exc}") from None
    if proc.returncode != 0 or "notAfter=" not in proc.stdout:
        raise ValueError((proc.stderr.strip().splitlines() or ["not a PEM certificate"])[-1])
    text = proc.stdout.strip().split("notAfter=", 1)[1].strip()
    moment = _dt.datetime.strptime(text.replace("  ", " "), "%b %d %H:%M:%S %Y %Z")
    return moment.replace(tzinfo=_dt.UTC)
