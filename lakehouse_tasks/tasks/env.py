"""``env.*`` tasks: list, show and compare environments."""

from __future__ import annotations

from typing import Any

from invoke import Collection

from ._base import audited, default_env, env_files, lakehouse_task

# Domain modules load inside the task bodies, so `invoke --list` does not pay for them
# (docs/PERFORMANCE.md, CLI start-up).


def environment_rows(name: str, files: list[str] | None = None) -> list[dict[str, Any]]:
    from ..environment import load_environment

    env = load_environment(name, env_files=files or [], strict=False)
    masked = env.masked()
    return [
        {
            "name": key,
            "value": masked[key],
            "secret": env.is_secret(key),
            "source": env.sources.get(key, ""),
        }
        for key in sorted(masked)
    ]


@lakehouse_task(name="list")
def list_(c: Any, json_: bool = False) -> None:
    """List the known environments (one per env/<name>.env)."""
    from ..environment import known_environments
    from ..paths import project_root
    from ..ui import Output

    names = known_environments(project_root())
    out = Output(json_mode=json_)
    if json_:
        out.json(names)
        return
    for name in names:
        out.line(name)


@lakehouse_task(help={"show_source": "add a column naming the layer each value came from"})
def show(
    c: Any,
    env: str | None = None,
    json_: bool = False,
    env_file: list[str] | None = None,
    show_source: bool = False,
) -> None:
    """Print an environment's resolved variables with every secret masked."""
    from ..environment import load_environment
    from ..ui import Output, Table

    name = default_env(env)
    loaded = load_environment(name, env_files=env_files(env_file), strict=False)
    out = Output(json_mode=json_)
    rows = environment_rows(name, env_files(env_file))
    if json_:
        out.json(
            {
                "environment": name,
                "project": loaded.project_name,
                "variables": {r["name"]: r["value"] for r in rows},
                "sources": {r["name"]: r["source"] for r in rows},
                "secrets": sorted(r["name"] for r in rows if r["secret"]),
                "warnings": list(loaded.warnings),
            }
        )
        return
    columns = [("name", "Variable"), ("value", "Value")]
    if show_source:
        columns.append(("source", "Source"))
    out.table(
        Table(columns=columns, rows=rows, title=f"Environment {name} ({len(rows)} variables)")
    )
    for warning in loaded.warnings:
        out.warn(warning)


def diff_environments(left: str, right: str) -> list[dict[str, Any]]:
    """Every variable of either environment with both values (secrets masked) and a status."""
    from ..environment import MASK, load_environment

    a = load_environment(left, strict=False)
    b = load_environment(right, strict=False)
    rows = []
    for key in sorted(set(a.values) | set(b.values)):
        va, vb = a.values.get(key), b.values.get(key)
        secret = a.is_secret(key) or b.is_secret(key)
        if va is None or vb is None:
            status = f"only {left}" if vb is None else f"only {right}"
        else:
            status = "same" if va == vb else "differs"
        rows.append(
            {
                "name": key,
                left: (MASK if secret and va else va),
                right: (MASK if secret and vb else vb),
                "status": status,
            }
        )
    return rows


@lakehouse_task(
    positional=["left", "right"],
    help={
        "left": "first environment",
        "right": "second environment",
        "all_": "also list variables whose values are the same",
    },
)
def diff(c: Any, left: str, right: str, json_: bool = False, all_: bool = False) -> None:
    """Compare two environments side by side, differences highlighted."""
    from ..ui import Output, Table

    rows = diff_environments(left, right)
    out = Output(json_mode=json_)
    if json_:
        out.json({"left": left, "right": right, "variables": rows})
        return
    shown = rows if all_ else [r for r in rows if r["status"] != "same"]
    same = len(rows) - len([r for r in rows if r["status"] != "same"])
    out.table(
        Table(
            columns=[("name", "Variable"), (left, left), (right, right), ("status", "")],
            rows=shown,
            title=f"{left} vs {right}",
            caption=f"{len(rows) - same} differ, {same} the same"
            + ("" if all_ else " (use --all to list them)"),
            status_column="status",
        )
    )


#: The sign-in of each web interface: compose service -> (user variable, password variable).
ADMIN_LOGINS = {
    "minio": ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"),
    "superset": ("SUPERSET_ADMIN_USER", "SUPERSET_ADMIN_PASSWORD"),
    "airflow-webserver": ("AIRFLOW_ADMIN_USER", "AIRFLOW_ADMIN_PASSWORD"),
    "grafana": ("GRAFANA_ADMIN_USER", "GRAFANA_ADMIN_PASSWORD"),
}


def login_rows(env: Any, *, reveal: bool) -> list[dict[str, str]]:
    """One row per web interface that has an admin sign-in: interface, URL, user, password
    (secret values masked unless ``reveal``)."""
    from ..environment import MASK
    from ..hooks.manager import get_plugin_manager

    rows = []
    for url in get_plugin_manager().access_urls(env=env) or []:
        names = ADMIN_LOGINS.get(getattr(url, "service", ""))
        if names is None:
            continue
        user_var, password_var = names
        values = []
        for var in names:
            value = env.get(var) or ""
            values.append(value if reveal or not (value and env.is_secret(var)) else MASK)
        rows.append(
            {
                "name": url.name,
                "url": url.url,
                "user": values[0],
                "password": values[1],
                "variables": f"{user_var} / {password_var}",
                "source": env.sources.get(password_var, ""),
            }
        )
    return rows


@lakehouse_task()
@audited("env.logins")
def logins(
    c: Any, env: str | None = None, json_: bool = False, env_file: list[str] | None = None
) -> None:
    """Show the admin sign-in of every web interface (MinIO, Superset, Airflow, Grafana).

    The passwords are shown on a terminal only; piped, logged or as --json they stay masked
    (run it in a terminal to read them). Reading them is recorded in the audit log.
    """
    from ..environment import load_environment
    from ..ui import Output, Table

    out = Output(json_mode=json_)
    loaded = load_environment(default_env(env), env_files=env_files(env_file), strict=False)
    reveal = out.is_tty and not json_
    rows = login_rows(loaded, reveal=reveal)
    if json_:
        out.json({"environment": loaded.name, "logins": rows})
        return
    out.table(
        Table(
            columns=[
                ("name", "Interface"),
                ("url", "URL"),
                ("user", "User"),
                ("password", "Password"),
                ("source", "Set in"),
            ],
            rows=rows,
            title=f"Admin logins of {loaded.name}",
        )
    )
    if not reveal:
        out.warn("passwords are masked when the output is not a terminal; run it in one")


ns = Collection("env")
ns.add_task(list_)
ns.add_task(show)
ns.add_task(diff)
ns.add_task(logins)
