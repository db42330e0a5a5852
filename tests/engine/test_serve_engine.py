"""``invoke serve`` against real rehearsal stacks, looked at in a real browser.

Headless Chromium from Debian's package (installed by ``scripts/setup --test``), driven by
playwright with ``executable_path`` (no browser download), loads the page of a running server
and the tests check what a person sees: the service rows and their colours, a stopped service
turning red without a reload, the plots drawn, the sign-in form, and no secret in the page, its
API or its metrics. Reading tests use the session's shared stack; the one that stops a service
deploys its own.

Set ``LAKEHOUSE_SCREENSHOTS=docs/images`` to refresh the screenshots of docs/STATUS_PAGE.md.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.engine

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")
GREEN = "rgb(26, 127, 55)"
RED = "rgb(207, 34, 46)"
SCREENSHOTS = os.environ.get("LAKEHOUSE_SCREENSHOTS", "")


@contextmanager
def serving(
    project: Any, *flags: str, interval: int = 1
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``lakehouse serve`` on ``project`` on a free loopback port; yields its URL."""
    argv = [LAKEHOUSE, "serve", "--env", project.env.name, "--rehearsal",
            "--env-file", project.env_file, "--port", "0", "--interval", str(interval),
            "--sample-every", "1", *flags]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    stderr = proc.stderr
    threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True).start()
    url = ""
    seen: list[str] = []
    deadline = time.monotonic() + 120
    try:
        while not url and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            match = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
            url = match.group(1) if match else ""
        assert url, f"serve did not start: {''.join(seen)}"
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium with a fresh profile, driven through playwright."""
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: scripts/setup --test installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="lht-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def secrets_to_look_for(project: Any) -> list[str]:
    """The environment's secret values, less those that are also a service's or image's own
    name (dev's placeholders are words like "minio"; a service name is not a leak)."""
    stack = project.stack_for_reading()
    names = " ".join([*stack.services, *(s.image for s in stack.services.values())])
    return sorted(v for v in project.env.secret_values if v not in names)


def shown_status(page: Any, service: str) -> tuple[str, str]:
    """The status text and its colour, read in one go: the table is rebuilt at every refresh,
    so two separate reads could see two different tables (or a detached cell)."""
    text, color = page.evaluate(
        """service => {
            const cell = document.querySelector(`tr.service[data-service="${service}"] td.status`);
            return [cell.textContent, getComputedStyle(cell).color];
        }""",
        service,
    )
    return str(text), str(color)


def shoot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def test_the_page_shows_every_service_the_plots_and_no_secret(
    shared_dev_stack: Any, browser: Any
) -> None:
    project = shared_dev_stack
    active = sorted(project.stack_for_reading().active)
    with serving(project) as (url, _proc):
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("tr.service")
        shown = sorted(
            page.locator("tr.service").evaluate_all("rows => rows.map(r => r.dataset.service)")
        )
        assert shown == active
        for service in active:
            text, color = shown_status(page, service)
            assert text in ("healthy", "exited (0)"), service
            assert color == GREEN, service
        assert "healthy" in page.locator("#summary").inner_text()
        # An access URL is a link a person can click.
        links = page.locator('tr.service[data-service="minio"] a').evaluate_all(
            "a => a.map(x => x.href)"
        )
        assert links and links[0].startswith("http://")
        # The plots: CPU and memory per service, a line of two points or more once sampled.
        for plot in ("#plot-cpu", "#plot-mem"):
            page.wait_for_function(
                "sel => [...document.querySelectorAll(sel + ' polyline.series')]"
                ".some(p => p.getAttribute('points').trim().split(' ').length >= 2)",
                arg=plot,
                timeout=30_000,
            )
        series = page.locator("#plot-cpu polyline.series").evaluate_all(
            "ps => ps.map(p => p.dataset.series)"
        )
        assert set(series) <= set(active) and "minio" in series
        shoot(page, "status-page.png")

        html = page.content()
        text = page.inner_text("body")
        code, api = fetch(url + "api/status")
        assert code == 200
        _code, metrics = fetch(url + "metrics")
        assert 'lakehouse_service_up{environment="dev",service="minio"} 1.0' in metrics
        leaks = [
            s
            for s in secrets_to_look_for(project)
            for where in (html, text, api, metrics)
            if s in where
        ]
        assert leaks == []
        assert json.loads(api)["health"]["ok"] is True
        page.close()


def test_with_a_token_the_page_asks_for_it_and_a_wrong_one_is_refused(
    shared_dev_stack: Any, browser: Any
) -> None:
    from lakehouse_tasks.serve.auth import token_path

    with serving(shared_dev_stack, "--require-token", "--new-token") as (url, _proc):
        token = token_path(shared_dev_stack.env.root).read_text().strip()
        page = browser.new_page()
        page.goto(url)
        assert page.url.endswith("/login")  # redirected to the sign-in form
        assert "minio" not in page.content()
        page.fill("input[name=token]", "not-the-token")
        page.click("button[type=submit]")
        assert "That token is wrong" in page.inner_text("body")
        shoot(page, "status-login.png")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_selector("tr.service")
        assert page.url == url  # the token is in no URL, before or after
        assert token not in page.content()
        assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it
        assert fetch(url + "api/status")[0] == 401
        code, _ = fetch(url + "api/status", {"Authorization": f"Bearer {token}"})
        assert code == 200
        page.close()


def test_a_stopped_service_turns_red_within_one_refresh(
    rehearsal_project: Any, browser: Any
) -> None:
    from lakehouse_tasks.deploy import deploy_stack

    project = rehearsal_project(env="dev", hint="serve")
    deploy_stack(project, services=["minio"], skip_backup=True, skip_preflight=True, timeout=300)
    container = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project.compose.project_name}",
         "--filter", "label=com.docker.compose.service=minio"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[0]  # fmt: skip
    interval = 2
    with serving(project, interval=interval) as (url, _proc):
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector('tr.service[data-service="minio"]')
        page.wait_for_function(
            "() => document.querySelector('tr.service[data-service=\"minio\"] td.status')"
            ".textContent === 'healthy'",
            timeout=60_000,
        )
        assert shown_status(page, "minio") == ("healthy", GREEN)
        subprocess.run(["docker", "stop", "-t", "1", container], check=True, capture_output=True)
        stopped = time.time()
        # The first report taken after the stop already shows it ...
        while True:
            doc = json.loads(fetch(url + "api/status")[1])
            if datetime.fromisoformat(doc["health"]["time"]).timestamp() > stopped:
                break
            time.sleep(0.3)
        row = next(r for r in doc["health"]["services"] if r["service"] == "minio")
        assert row["status"] == "exited" and row["ok"] is False
        # ... and the open page, never reloaded, turns red by its next refresh.
        page.wait_for_function(
            "() => document.querySelector('tr.service[data-service=\"minio\"]').classList.contains('bad')",
            timeout=(doc["refresh_s"] + 3) * 1000,
        )
        assert shown_status(page, "minio") == ("exited", RED)
        assert page.locator("#summary").inner_text().startswith("DEGRADED")
        shoot(page, "status-page-degraded.png")
        page.close()


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LAKEHOUSE, *argv], capture_output=True, text=True, timeout=120)


def test_a_stack_that_is_not_deployed_is_one_sentence_and_exit_1(rehearsal_project: Any) -> None:
    project = rehearsal_project(env="dev", hint="nodeploy")
    proc = run_cli(
        "serve", "--env", "dev", "--rehearsal", "--env-file", project.env_file, "--port", "0"
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: dev is not deployed (no container of compose project "
        f"{project.compose.project_name}); deploy it first with `invoke deploy --env dev --rehearsal`."
    ]


def test_a_port_in_use_is_one_sentence_and_exit_3(shared_dev_stack: Any) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        proc = run_cli("serve", "--env", "dev", "--rehearsal", "--env-file", shared_dev_stack.env_file,
                       "--port", str(port))  # fmt: skip
    finally:
        holder.close()
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"error: Port {port} on 127.0.0.1 is already in use; stop what listens there or pass "
        "another --port (--port 0 picks a free one)."
    ]
