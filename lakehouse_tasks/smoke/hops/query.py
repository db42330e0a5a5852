"""Layer 4, query: the Trino hop (a table on object storage, through the hive catalog)."""

from __future__ import annotations

from typing import Any

from ..context import SmokeContext
from ..model import HopFailure

TRINO_PORT = 8080  # inside the container


def trino_connection(ctx: SmokeContext, schema: str | None = None) -> Any:
    import trino

    host, port = ctx.services.endpoint("trino", TRINO_PORT)
    return trino.dbapi.connect(
        host=host,
        port=port,
        user="lakehouse-smoke",
        catalog="hive",
        schema=schema,
        http_scheme="http",
        request_timeout=60,
    )


def _trino_all(conn: Any, sql: str) -> list[list[Any]]:
    cur = conn.cursor()
    cur.execute(sql)
    return [list(r) for r in cur.fetchall()]


def hop_trino(ctx: SmokeContext) -> str:
    schema = ctx.run_id
    table = f"hive.{schema}.canary"
    try:
        conn = trino_connection(ctx)
        catalogs = {row[0] for row in _trino_all(conn, "SHOW CATALOGS")}
        if "hive" not in catalogs:
            raise HopFailure(
                f"Trino has no hive catalog (it has {', '.join(sorted(catalogs))}); check "
                "compose/config/trino/catalog/hive.properties."
            )
        _trino_all(conn, f"CREATE SCHEMA hive.{schema}")

        def drop() -> None:
            again = trino_connection(ctx)
            _trino_all(again, f"DROP TABLE IF EXISTS {table}")
            _trino_all(again, f"DROP SCHEMA IF EXISTS hive.{schema}")

        ctx.on_cleanup(f"trino schema hive.{schema}", drop)
        _trino_all(conn, f"CREATE TABLE {table} (id integer, label varchar)")
        _trino_all(conn, f"INSERT INTO {table} VALUES (1, 'one'), (2, 'two')")
        rows = _trino_all(conn, f"SELECT id, label FROM {table} ORDER BY id")
        if rows != [[1, "one"], [2, "two"]]:
            raise HopFailure(f"{table} read back {rows!r} instead of the two rows inserted.")
    except HopFailure:
        raise
    except Exception as exc:
        raise HopFailure(_trino_cause(exc)) from None
    ctx.state["trino_table"] = f"{schema}.canary"
    return f"SHOW CATALOGS has hive; created, filled and read {table} on object storage"


def _trino_cause(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    first = str(message).strip().splitlines()[0] if str(message).strip() else type(exc).__name__
    return f"Trino failed: {first[:300]}"
