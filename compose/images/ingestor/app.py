"""The lakehouse ingestor: a tiny, dependency-free service.

* An HTTP server on port 8000: ``GET /health`` answers 200 with a JSON status (the compose
  healthcheck calls it), ``GET /stats`` reports what the ingest loop has done.
* An ingest loop that, every INGESTOR_INTERVAL_SECONDS, writes one JSON-lines batch to the
  local data directory and uploads it to MinIO (S3 API, AWS Signature V4 written with the
  standard library) under ``s3://<INGESTOR_BUCKET>/ingestor/``. An upload failure is logged and
  counted, never fatal: the batch stays on disk.

Configuration (environment): S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (or
AWS_ACCESS_KEY_ID_FILE / AWS_SECRET_ACCESS_KEY_FILE naming files that hold them, as compose
secrets do in staging and prod), AWS_REGION, INGESTOR_BUCKET, INGESTOR_DATA_DIR,
INGESTOR_INTERVAL_SECONDS, LOG_LEVEL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOG = logging.getLogger("ingestor")
PORT = 8000

_stats_lock = threading.Lock()
STATS = {"batches_written": 0, "uploads_ok": 0, "uploads_failed": 0, "last_batch": None}


def _bump(key: str, value: object = None) -> None:
    with _stats_lock:
        if value is None:
            STATS[key] += 1
        else:
            STATS[key] = value


def sign_v4_put(url: str, body: bytes, access_key: str, secret_key: str, region: str,
                now: dt.datetime) -> dict[str, str]:
    """Return the headers of an AWS Signature V4 signed PUT of ``body`` to ``url``."""
    parts = urllib.parse.urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([
        "PUT",
        urllib.parse.quote(parts.path or "/"),
        "",
        "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
        signed,
        payload_hash,
    ])
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for piece in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, piece.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    return headers


def secret(name: str) -> str:
    """A secret from the file named by NAME_FILE, else from NAME."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().rstrip("\n")
    return os.environ[name]


def upload(name: str, body: bytes) -> None:
    """PUT one object into the ingest bucket on MinIO."""
    endpoint = os.environ.get("S3_ENDPOINT", "http://minio:9000").rstrip("/")
    bucket = os.environ.get("INGESTOR_BUCKET", "raw")
    url = f"{endpoint}/{bucket}/ingestor/{name}"
    headers = sign_v4_put(url, body, secret("AWS_ACCESS_KEY_ID"),
                          secret("AWS_SECRET_ACCESS_KEY"),
                          os.environ.get("AWS_REGION", "us-east-1"),
                          dt.datetime.now(dt.timezone.utc))
    headers.pop("host")
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def make_batch(now: dt.datetime, size: int = 20) -> bytes:
    """A batch of synthetic taxi-trip-like records, one JSON object per line."""
    rows = []
    for i in range(size):
        rows.append({
            "trip_id": f"{now:%Y%m%d%H%M%S}-{i:03d}",
            "pickup_at": now.isoformat(),
            "passenger_count": random.randint(1, 4),
            "trip_distance_km": round(random.uniform(0.5, 25.0), 2),
            "fare_amount": round(random.uniform(3.0, 80.0), 2),
        })
    return "\n".join(json.dumps(r) for r in rows).encode() + b"\n"


def ingest_loop(stop: threading.Event) -> None:
    data_dir = Path(os.environ.get("INGESTOR_DATA_DIR", "/data"))
    interval = float(os.environ.get("INGESTOR_INTERVAL_SECONDS", "60"))
    data_dir.mkdir(parents=True, exist_ok=True)
    while not stop.is_set():
        now = dt.datetime.now(dt.timezone.utc)
        name = f"trips-{now:%Y%m%dT%H%M%SZ}.jsonl"
        body = make_batch(now)
        (data_dir / name).write_bytes(body)
        _bump("batches_written")
        _bump("last_batch", name)
        try:
            upload(name, body)
            _bump("uploads_ok")
        except (urllib.error.URLError, OSError, KeyError) as exc:
            _bump("uploads_failed")
            LOG.warning("upload of %s failed (kept on disk): %s", name, exc)
        stop.wait(interval)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        elif self.path == "/stats":
            with _stats_lock:
                self._json(200, dict(STATS))
        else:
            self._json(404, {"error": "not found"})

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        LOG.debug("%s " + fmt, self.address_string(), *args)


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    threading.Thread(target=ingest_loop, args=(stop,), daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    LOG.info("ingestor listening on :%d", PORT)
    try:
        server.serve_forever()
    finally:
        stop.set()


if __name__ == "__main__":
    main()
