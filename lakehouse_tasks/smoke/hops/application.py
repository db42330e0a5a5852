"""Layer 6, application: the ingestor and dbt hops."""

from __future__ import annotations

import urllib.error

from ..context import SmokeContext
from ..model import HopFailure, HopSkipped
from .web import Http, http_failure

INGESTOR_PORT = 8000  # inside the container


def hop_ingestor(ctx: SmokeContext) -> str:
    host, port = ctx.services.endpoint("ingestor", INGESTOR_PORT)
    try:
        status, stats, _ = Http(f"http://{host}:{port}", timeout=10).request("GET", "/stats")
    except (urllib.error.URLError, OSError) as exc:
        raise http_failure("ingestor", exc) from None
    if status != 200 or not isinstance(stats, dict):
        raise HopFailure(f"the ingestor's /stats answered {status}.")
    ok, failed = int(stats.get("uploads_ok", 0)), int(stats.get("uploads_failed", 0))
    if not stats.get("last_batch"):
        raise HopSkipped("the ingestor has not written a batch yet; run smoke again later.")
    if failed and not ok:
        raise HopFailure(f"every ingestor upload failed ({failed}); check its S3 settings.")
    if failed:
        raise HopFailure(f"{failed} of {ok + failed} ingestor uploads failed; see its logs.")
    return f"last batch {stats['last_batch']}: {ok} uploads, none failed"


def hop_dbt(ctx: SmokeContext) -> str:
    for step in ("debug", "parse"):
        proc = ctx.exec_in("dbt", ["dbt", step], timeout=180)
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            error = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "")
            raise HopFailure(f"dbt {step} failed: {error.strip()[:300]}")
    return "dbt debug (connection to Trino) and dbt parse passed"
