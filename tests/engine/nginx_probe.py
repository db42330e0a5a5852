"""Run a real nginx in a private network namespace and report what a user would notice.

Started by tests/engine/test_tls_proxy_nginx.py as
``unshare --net python nginx_probe.py SPEC.json``: inside the new namespace it brings up
loopback, starts a small HTTP backend that records the headers it receives, starts nginx
under ``setpriv`` with exactly the capability set of the prod compose service, and then
prints one JSON document: whether nginx started, its stderr, the capabilities the master
really had, the status of a health probe and the headers an HTTPS request to the Trino port
delivered to the backend.

The namespace keeps nginx's listen ports (80, 443, 8080, ...) off the shared host.
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append({k: v for k, v in self.headers.items()})
        body = b'{"starting":false}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _cap_eff(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return -1


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", spec["backend_port"]), _Recorder)
    threading.Thread(target=backend.serve_forever, daemon=True).start()

    bounding = "-all" + "".join(f",+{c.lower()}" for c in spec["capabilities"])
    argv = [
        "setpriv",
        f"--bounding-set={bounding}",
        "--inh-caps=-all",
        "--no-new-privs",
        "--",
        spec["nginx"],
        "-e",
        "stderr",
        "-p",
        spec["prefix"],
        "-c",
        spec["conf"],
        "-g",
        "daemon off;",
    ]
    # nginx logs requests to /dev/stdout: keep them out of the report.
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    report: dict[str, Any] = {"argv": argv}
    started = _wait_port(80, 10) and proc.poll() is None
    report["started"] = started
    if started:
        report["master_cap_eff"] = _cap_eff(proc.pid)
        with urllib.request.urlopen("http://127.0.0.1/healthz", timeout=5) as answer:
            report["healthz"] = [answer.status, answer.read().decode()]
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(
            "https://127.0.0.1:8086/v1/info",
            # What a client (or another proxy in front) may send: it must not reach Trino.
            headers={"X-Forwarded-Host": "client.example", "Forwarded": "for=1.2.3.4"},
        )
        with urllib.request.urlopen(request, timeout=5, context=context) as answer:
            report["trino"] = [answer.status, answer.read().decode()]
        report["trino_headers"] = _Recorder.seen[-1] if _Recorder.seen else {}
        proc.terminate()
    try:
        _, stderr = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    report["returncode"] = proc.returncode
    report["stderr"] = stderr
    backend.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
