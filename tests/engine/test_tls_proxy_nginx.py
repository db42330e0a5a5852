"""The prod TLS proxy's configuration on Debian's real nginx, with prod's capabilities.

What is proved: the nginx master, running as root with exactly the capability set the merged
prod configuration gives tls-proxy (`cap_drop: [ALL]` + `cap_add`), loads a TLS key that is
mode 0600 and owned by the operator (not root), as the tool's security check requires; with
DAC_OVERRIDE taken away it cannot, so the capability is what makes the two agree. The same
run shows that the Trino port delivers no X-Forwarded-*/Forwarded header to Trino, even one
the client sent itself, while the other settings of the file still apply.

How: the repository's compose/config/tls-proxy/nginx.conf, with only host-specific paths
changed (certificate paths and /tmp scratch paths into the test's directory, the worker user
to the host's `nobody`, the upstream of the Trino port to a local recording backend), run by
the nginx binary from Debian's package (`scripts/debian-nginx`) under `setpriv` in a private
network namespace (`unshare --net`). Needs root (to own files as another user and to drop
capabilities), util-linux's `unshare`/`setpriv`, iproute2 and openssl.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse_tasks.environment import load_environment
from lakehouse_tasks.security import file_findings
from tests.conftest import self_signed_cert
from tests.contract.stack import COMPOSE_DIR, REPO, compose_available, merged_config

pytestmark = pytest.mark.engine

OPERATOR_UID = 1000  # the operator who owns the key; any uid other than 0 will do
BACKEND_PORT = 18080
PROBE = Path(__file__).with_name("nginx_probe.py")
CAP_BITS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "DAC_READ_SEARCH": 2,
    "FOWNER": 3,
    "SETGID": 6,
    "SETUID": 7,
    "NET_BIND_SERVICE": 10,
}


@pytest.fixture(scope="module")
def nginx() -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root: the key must belong to another user and capabilities are dropped")
    for tool in ("unshare", "setpriv", "ip", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    found = subprocess.run([str(REPO / "scripts" / "debian-nginx")], capture_output=True, text=True)
    assert found.returncode == 0, f"scripts/debian-nginx failed: {found.stderr}"
    return found.stdout.strip()


@pytest.fixture(scope="module")
def prod_proxy() -> dict:
    if not compose_available():
        pytest.skip("`docker compose` is not installed: cannot merge the prod configuration")
    return merged_config("prod")["services"]["tls-proxy"]


def _prepare(tmp: Path, proxy: dict) -> tuple[Path, Path]:
    """The run directory: the real nginx.conf with host paths, a cert and an operator's key."""
    tls = tmp / "tls"
    tls.mkdir()
    mounts = {v["target"]: v for v in proxy["volumes"] if v["type"] == "bind"}
    conf_mount = mounts["/etc/nginx/nginx.conf"]
    assert Path(conf_mount["source"]) == COMPOSE_DIR / "config" / "tls-proxy" / "nginx.conf"
    conf = Path(conf_mount["source"]).read_text()
    key, cert = tls / "tls.key", tls / "tls.crt"
    self_signed_cert(cert, key)
    os.chown(key, OPERATOR_UID, OPERATOR_UID)
    os.chmod(key, 0o600)
    # The container's paths, as compose mounts them, mapped to this directory.
    for target in ("/etc/nginx/tls/tls.crt", "/etc/nginx/tls/tls.key"):
        assert target in mounts, f"prod tls-proxy no longer mounts {target}"
    scratch = tmp / "scratch"
    scratch.mkdir()
    conf = re.sub(r"(?<=\s)/tmp/", f"{scratch}/", conf)
    conf = conf.replace("/etc/nginx/tls/", f"{tls}/")
    conf = re.sub(r"^user\s+nginx;", "user nobody nogroup;", conf, flags=re.M)
    conf = conf.replace(
        "proxy_pass http://trino:8080;", f"proxy_pass http://127.0.0.1:{BACKEND_PORT};"
    )
    # The other upstreams are never requested here; nginx resolves them at start, so they
    # point at a closed local port.
    conf = re.sub(r"proxy_pass http://[a-z-]+:\d+;", "proxy_pass http://127.0.0.1:9;", conf)
    path = tmp / "nginx.conf"
    path.write_text(conf)
    return path, key


def _probe(tmp: Path, nginx: str, conf: Path, capabilities: list[str]) -> dict:
    spec = tmp / f"spec-{len(capabilities)}.json"
    spec.write_text(
        json.dumps(
            {
                "nginx": nginx,
                "conf": str(conf),
                "prefix": str(tmp) + "/",
                "capabilities": capabilities,
                "backend_port": BACKEND_PORT,
            }
        )
    )
    result = subprocess.run(
        ["unshare", "--net", sys.executable, str(PROBE), str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_prod_capabilities_let_the_real_nginx_load_an_operator_owned_0600_key(
    nginx: str, prod_proxy: dict, tmp_path: Path
) -> None:
    os.chmod(tmp_path, 0o755)
    conf, key = _prepare(tmp_path, prod_proxy)
    assert prod_proxy["cap_drop"] == ["ALL"]
    caps = sorted(prod_proxy["cap_add"])

    report = _probe(tmp_path, nginx, conf, caps)
    assert report["started"], f"nginx did not start with {caps}:\n{report['stderr']}"
    expected_mask = sum(1 << CAP_BITS[c] for c in caps)
    assert report["master_cap_eff"] == expected_mask, "the master ran with other capabilities"
    assert report["healthz"] == [200, "ok\n"]
    # Item 3: Trino behind the proxy sees no forwarded header, so it cannot answer 406.
    assert report["trino"][0] == 200
    forwarded = {
        k
        for k in report["trino_headers"]
        if k.lower().startswith("x-forwarded") or k.lower() == "forwarded"
    }
    assert forwarded == set(), f"Trino would answer 406 to {forwarded}"
    assert report["trino_headers"].get("Host") == "127.0.0.1:8086"

    # The key is what the tool's security check asks for.
    env = load_environment(
        "prod",
        root=REPO,
        strict=False,
        process_env={"TLS_KEY_FILE": str(key), "TLS_CERT_FILE": str(key.with_name("tls.crt"))},
    )
    (key_check,) = [f.check for f in file_findings(env) if f.check.name.startswith("TLS key")]
    assert key_check.status.name == "PASS", key_check


def test_without_dac_override_the_same_nginx_cannot_read_the_key(
    nginx: str, prod_proxy: dict, tmp_path: Path
) -> None:
    os.chmod(tmp_path, 0o755)
    conf, _ = _prepare(tmp_path, prod_proxy)
    caps = sorted(set(prod_proxy["cap_add"]) - {"DAC_OVERRIDE"})
    report = _probe(tmp_path, nginx, conf, caps)
    assert not report["started"]
    assert "tls.key" in report["stderr"] and "Permission denied" in report["stderr"], report[
        "stderr"
    ]
