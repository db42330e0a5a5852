"""``logs``: the stack's logs, service prefixes coloured on a terminal, secrets scrubbed."""

from __future__ import annotations

from typing import Any

from ._base import lakehouse_task, project_from_flags

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).


@lakehouse_task(
    iterable=["service"],
    help={
        "service": "only these services; repeat the flag or give a comma list "
        "(--service minio --service trino, or --service minio,trino)",
        "follow": "keep streaming new lines until Ctrl-C (which exits 0)",
        "since": "only lines newer than a duration (10m, 2h) or a date/time "
        "(2026-11-01, 2026-11-01T08:00:00Z)",
        "tail": "only the last N lines of each service (default: all)",
        "timestamps": "prefix every line with the engine's timestamp (default on; "
        "--no-timestamps to drop it)",
    },
)
def logs(
    c: Any,
    env: str | None = None,
    service: list[str] | None = None,
    follow: bool = False,
    since: str = "",
    tail: str = "",
    timestamps: bool = True,
    rehearsal: bool = False,
    env_file: list[str] | None = None,
) -> None:
    """Print the stack's logs (docker compose logs), secrets masked in every line.

    Service prefixes are coloured, each service always the same colour, when stdout is a
    terminal; piped output is compose's plain ``service-1 | line`` format.
    """
    from ..logs import prefix_width, render_plain, split_services, stream_logs
    from ..logs_view import render_coloured
    from ..ui import Output

    project = project_from_flags(env, rehearsal, env_file, strict=False)
    services = split_services(service)
    out = Output()
    width = prefix_width(services or project.stack.active)
    lines = stream_logs(
        project, services, follow=follow, since=since, tail=tail, timestamps=timestamps
    )
    try:
        for line in lines:
            if out.is_tty:
                out.console.print(render_coloured(line, width), soft_wrap=True)
            else:
                out.stdout.write(render_plain(line, width) + "\n")
                out.stdout.flush()
    except KeyboardInterrupt:
        # Ctrl-C is how --follow ends: a normal, successful exit.
        lines.close()
        return
    except BrokenPipeError:
        # `invoke logs | head`: the reader has what it wanted.
        lines.close()
        return
