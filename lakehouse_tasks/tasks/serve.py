"""``serve``: a read-only status page, JSON API and ``/metrics`` of one environment."""

from __future__ import annotations

from typing import Any

from ._base import lakehouse_task

DEFAULT_PORT = 8790
DEFAULT_INTERVAL = 5


@lakehouse_task(
    help={
        "bind": "address to listen on (default 127.0.0.1); any non-loopback address needs the "
        "token made by --new-token",
        "port": f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
        "require_token": "ask for the token on a loopback address too (a host with other users)",
        "new_token": "make a new access token (0600 in the state dir; shown only by its first "
        "four characters), then serve",
        "interval": f"seconds between two refreshes of the health table (default "
        f"{DEFAULT_INTERVAL})",
        "sample_every": "seconds between two kept samples of the CPU and memory plots "
        "(default 60; six hours are kept)",
    },
)
def serve(
    c: Any,
    env: str | None = None,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
    bind: str = "127.0.0.1",
    port: int | None = None,
    new_token: bool = False,
    require_token: bool = False,
    interval: int | None = None,
    sample_every: int | None = None,
) -> None:
    """Serve a live status page of the environment: services, smoke, deploys, lock, backups,
    plots, plugins and events; /api/status (JSON) and /metrics (Prometheus). Read-only."""
    from ..engine import containers
    from ..errors import ConfigError, ExitCode, LakehouseError, RefusedError
    from ..serve.app import Refresher, bind_socket, create_app, run_server
    from ..serve.auth import (
        Gate,
        check_address,
        is_loopback,
        load_scrape_token,
        load_token,
        serve_dir,
        token_path,
    )
    from ..serve.auth import new_token as make_token
    from ..serve.samples import DEFAULT_EVERY_S, SampleStore
    from ..ui import Output
    from ._base import project_from_flags

    out = Output()
    address = check_address(bind)
    port = DEFAULT_PORT if port is None else int(port)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0-65535, not {port}.")
    seconds = DEFAULT_INTERVAL if interval is None else int(interval)
    if seconds < 1:
        raise ConfigError(f"--interval must be at least 1 second, not {seconds}.")
    every = DEFAULT_EVERY_S if sample_every is None else float(sample_every)
    if every < 0:
        raise ConfigError(f"--sample-every must be 0 or more seconds, not {sample_every}.")

    project = project_from_flags(env, rehearsal, env_file, strict=False)
    root = project.env.root
    if new_token:
        path, hint = make_token(root)
        out.success(
            f"a new token is in {path} (0600), starting {hint}; the old one no longer works"
        )
    token = None
    if require_token or not is_loopback(address):
        token = load_token(root)
        if token is None:
            why = (
                "--require-token was given"
                if is_loopback(address)
                else f"--bind {address} is not a loopback address"
            )
            raise RefusedError(
                f"{why} and no token exists; add --new-token to make one (0600 in the state "
                "dir), or bind 127.0.0.1."
            )
    listed = containers.project_containers(project.compose.docker_cmd, project.compose.project_name)
    if not listed:
        raise LakehouseError(
            f"{project.env.name} is not deployed (no container of compose project "
            f"{project.compose.project_name}); deploy it first with `invoke deploy --env "
            f"{project.env.name}{' --rehearsal' if project.rehearsal else ''}`.",
            ExitCode.DEGRADED,
        )
    sock = bind_socket(address, port)
    samples = SampleStore(
        serve_dir(root) / f"{project.compose.project_name}.samples.jsonl", every=every
    )
    refresher = Refresher(project, samples, interval=float(seconds))
    try:
        refresher.refresh()  # the page has data from its first load on
        refresher.start()
        app = create_app(
            project.env.name,
            lambda: refresher.doc,
            Gate(token, load_scrape_token(root) if token else None),
        )
        host = f"[{address}]" if ":" in address else address
        actual = sock.getsockname()[1]
        note = f"; sign in with the token in {token_path(root)}" if token else " (loopback only)"
        out.info(f"serving {project.env.name} at http://{host}:{actual}/{note}; Ctrl-C stops")
        run_server(app, sock)
    finally:
        refresher.stop()
        sock.close()
