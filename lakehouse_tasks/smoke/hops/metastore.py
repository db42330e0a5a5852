"""Layer 2, metadata: the Hive metastore hop (a scratch schema through Thrift)."""

from __future__ import annotations

from ..context import SmokeContext
from ..hms import MetastoreClient, ThriftError
from ..model import HopFailure

HMS_PORT = 9083  # inside the container


def hop_metastore(ctx: SmokeContext) -> str:
    host, port = ctx.services.endpoint("hive-metastore", HMS_PORT)
    name = f"{ctx.run_id}_hms"
    try:
        with MetastoreClient(host, port) as hms:
            # No location: the metastore puts the schema under its own warehouse directory,
            # as it does for a user's CREATE SCHEMA (and removes it again with the drop).
            hms.create_database(name, description="lakehouse smoke scratch")

            def drop() -> None:
                # Only when it is still there: Hive 2.3 answers a drop of a missing schema
                # with a MetaException, not NoSuchObjectException.
                with MetastoreClient(host, port) as again:
                    if name in [d.lower() for d in again.get_all_databases()]:
                        again.drop_database(name)

            ctx.on_cleanup(f"metastore schema {name}", drop)
            db = hms.get_database(name)
            if db.get(1, "").lower() != name:
                raise HopFailure(f"the metastore returned {db.get(1)!r} for schema {name}.")
            hms.drop_database(name)
            if name in [d.lower() for d in hms.get_all_databases()]:
                raise HopFailure(f"schema {name} is still listed after drop_database.")
    except ThriftError as exc:
        raise HopFailure(
            f"the metastore refused the call: {exc.name}: {exc.message[:200]}"
        ) from None
    except (ConnectionError, OSError) as exc:
        raise HopFailure(
            f"the metastore does not answer Thrift on {host}:{port} ({type(exc).__name__}); "
            "check hive-metastore's logs."
        ) from None
    except ValueError as exc:
        raise HopFailure(f"the metastore's answer is not Thrift: {exc}") from None
    return f"created, read and dropped schema {name} through Thrift"
