"""The server behind ``invoke serve``: a refresher thread, a Starlette app, a uvicorn server.

Why Starlette and uvicorn: both are small, well-kept ASGI projects (Starlette is what FastAPI is
built on; uvicorn is the reference ASGI server), their only dependencies are anyio, h11 and
click, and the page needs no more than a handful of routes, a middleware-free access check and
a streaming-free JSON answer. A larger framework would bring templates, ORMs or validation
layers this read-only view does not use.

One refresher thread takes a health snapshot every ``interval`` seconds (the same constant
number of docker calls as ``invoke health``) and re-reads the slower sections every few
refreshes; requests only read its latest report. So ten open browser tabs cost no more docker
calls than one, and the memory in use is one report plus the bounded sample history.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import ExitCode, LakehouseError
from . import metrics as metrics_mod
from .auth import COOKIE_NAME, Gate
from .page import login_page, status_page
from .samples import SampleStore
from .status import build_report, report_document, slow_sections, urls_by_service

if TYPE_CHECKING:
    from ..project import Project
    from ..snapshots import HealthSnapshot

#: How often the slower sections (deploys, backups, events, plugins) are read again.
SLOW_EVERY_S = 15.0

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}

WRONG_TOKEN = (
    "That token is wrong; copy it again from .lakehouse/serve/token on the server "
    "(or make a new one with `invoke serve --new-token`)."
)
NO_TOKEN = "This page needs the server's token: sign in at /login or send Authorization: Bearer."


class Refresher:
    """Keeps the latest report of one project fresh in a background thread."""

    def __init__(
        self,
        project: Project,
        samples: SampleStore,
        *,
        interval: float = 5.0,
        take: Callable[..., HealthSnapshot] | None = None,
        slow_every: float = SLOW_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.project = project
        self.samples = samples
        self.interval = interval
        self.slow_every = slow_every
        self._clock = clock
        self._take = take
        self._slow: dict[str, Any] = {}
        self._urls: dict[str, str] = {}
        self._slow_at = -1e9
        self._doc: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0

    @property
    def doc(self) -> dict[str, Any] | None:
        return self._doc

    def refresh(self) -> dict[str, Any]:
        """Take one snapshot and publish a new report; a failed snapshot keeps the last
        report and adds the one-line error to it (the page says so instead of going blank)."""
        from ..engine.inspect_cache import InspectCache
        from ..health import take_snapshot

        if self._take is None:  # the real engine: inspect only what changed since the last one
            self._take = functools.partial(take_snapshot, inspect_cache=InspectCache())
        take = self._take
        try:
            snapshot = take(self.project, resources=True)
        except LakehouseError as exc:
            doc = dict(self._doc or {"environment": self.project.env.name})
            doc["errors"] = [f"health: {exc.message}"]
            self._doc = doc
            return doc
        now = self._clock()
        if now - self._slow_at >= self.slow_every:
            self._slow = slow_sections(self.project, snapshot.time)
            self._urls = urls_by_service(self.project)
            self._slow_at = now
        self.samples.add(snapshot)
        report = build_report(
            self.project,
            snapshot,
            self._slow,
            self.samples,
            refresh_s=self.interval,
            urls=self._urls,
        )
        doc = report_document(report, self.project.env)
        self._doc = doc
        self.refreshes += 1
        return doc

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.refresh()
            except Exception as exc:  # a bug in one source must not stop the page
                doc = dict(self._doc or {})
                doc["errors"] = [f"refresh failed: {type(exc).__name__}: {exc}"]
                self._doc = doc
            self._stop.wait(max(0.2, self.interval - (time.monotonic() - started)))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="serve-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def _headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**SECURITY_HEADERS, **(extra or {})}


def create_app(
    environment: str,
    current: Callable[[], Mapping[str, Any] | None],
    gate: Gate,
) -> Starlette:
    """The ASGI application: ``/``, ``/api/status``, ``/metrics``, ``/login``, ``/healthz``."""
    registry = metrics_mod.registry_for(current)

    def allowed(request: Request) -> bool:
        return gate.allows(request.headers.get("authorization"), request.cookies.get(COOKIE_NAME))

    async def index(request: Request) -> Response:
        if not allowed(request):
            return RedirectResponse("login", status_code=303, headers=_headers())
        return HTMLResponse(status_page(environment), headers=_headers())

    async def api_status(request: Request) -> Response:
        if not allowed(request):
            return JSONResponse({"error": NO_TOKEN}, status_code=401, headers=_headers())
        doc = current()
        if doc is None:
            return JSONResponse(
                {"error": "the first refresh has not finished yet; try again in a few seconds"},
                status_code=503,
                headers=_headers(),
            )
        return Response(
            json.dumps(doc, separators=(",", ":")),
            media_type="application/json",
            headers=_headers(),
        )

    async def metrics(request: Request) -> Response:
        if not gate.allows_metrics(
            request.headers.get("authorization"), request.cookies.get(COOKIE_NAME)
        ):
            return Response(NO_TOKEN + "\n", status_code=401, headers=_headers())
        body = await asyncio.to_thread(metrics_mod.exposition, registry)
        return Response(body, media_type=metrics_mod.CONTENT_TYPE, headers=_headers())

    async def login(request: Request) -> Response:
        if gate.open:
            return RedirectResponse("./", status_code=303, headers=_headers())
        if request.method == "GET":
            return HTMLResponse(login_page(environment), headers=_headers())
        body = (await request.body())[:4096].decode("utf-8", errors="replace")
        candidate = (parse_qs(body).get("token") or [""])[0]
        if not gate.token_matches(candidate):
            await asyncio.sleep(0.5)  # a guess costs time
            return HTMLResponse(
                login_page(environment, WRONG_TOKEN), status_code=401, headers=_headers()
            )
        answer = RedirectResponse("./", status_code=303, headers=_headers())
        answer.set_cookie(
            COOKIE_NAME, gate.cookie_value(), httponly=True, samesite="strict", path="/"
        )
        return answer

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": current() is not None}, headers=_headers())

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/status", api_status),
            Route("/metrics", metrics),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/healthz", healthz),
        ]
    )


def bind_socket(address: str, port: int) -> socket.socket:
    """A listening socket on ``address:port``; a port in use is one sentence (exit 3)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48):  # EADDRINUSE on Linux, macOS
            raise LakehouseError(
                f"Port {port} on {address} is already in use; stop what listens there or pass "
                "another --port (--port 0 picks a free one).",
                ExitCode.PREFLIGHT_FAILED,
            ) from None
        raise LakehouseError(
            f"Cannot listen on {address}:{port} ({exc.strerror}); pass an address of this "
            "host to --bind.",
            ExitCode.BAD_INPUT,
        ) from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def run_server(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM (uvicorn handles both cleanly)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # request lines are noise here; no token is ever in a URL anyway
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=3,
    )
    uvicorn.Server(config).run(sockets=[sock])
