"""The HTTP client of the hops that speak to a web API (Superset, Airflow, the ingestor)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from typing import Any

from ..model import HopFailure


class Http:
    """A tiny cookie-keeping JSON client on urllib."""

    def __init__(self, base: str, timeout: float = 30.0) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.headers: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        for key, value in {**self.headers, **(headers or {})}.items():
            req.add_header(key, value)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(req, timeout=self.timeout) as resp:
                text = resp.read().decode("utf-8", "replace")
                status = resp.status
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            status = exc.code
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        return status, payload, text


def http_failure(service: str, exc: Exception) -> HopFailure:
    reason = getattr(exc, "reason", exc)
    return HopFailure(f"{service} does not answer HTTP ({reason}); check that it runs.")
