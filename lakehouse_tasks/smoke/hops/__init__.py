"""The smoke hops, in the order data flows through the lakehouse: one module per layer of the
stack (docs/ARCHITECTURE.md), this module puts them in order.

Clients load inside the hop bodies (boto3, trino), so ``invoke --list`` does not pay for them.
"""

from __future__ import annotations

from ..context import Hop
from ..model import HopSkipped
from .analytics import (
    AIRFLOW_PORT,
    DAG_ID,
    SUPERSET_PORT,
    hop_airflow,
    hop_superset,
    hop_superset_trino,
)
from .application import INGESTOR_PORT, hop_dbt, hop_ingestor
from .metastore import HMS_PORT, hop_metastore
from .query import TRINO_PORT, hop_trino, trino_connection
from .spark import SPARK_TIMEOUT, hop_spark, hop_spark_table
from .storage import S3_PORT, SMOKE_PREFIX, hop_object_storage, s3_client

HOPS: tuple[Hop, ...] = (
    Hop("object-storage", ("minio",), hop_object_storage),
    Hop("metastore", ("hive-metastore",), hop_metastore),
    Hop("trino", ("trino", "hive-metastore", "minio"), hop_trino),
    Hop("spark", ("spark-master", "spark-worker-1"), hop_spark),
    Hop(
        "spark-table",
        ("spark-master", "spark-worker-1", "hive-metastore", "trino"),
        hop_spark_table,
        needs=("trino",),
    ),
    Hop("superset", ("superset",), hop_superset),
    Hop("superset-trino", ("superset", "trino"), hop_superset_trino, needs=("superset",)),
    Hop("airflow", ("airflow-webserver", "airflow-scheduler"), hop_airflow),
    Hop("ingestor", ("ingestor", "minio"), hop_ingestor),
    Hop("dbt", ("dbt", "trino"), hop_dbt),
)
HOP_NAMES = tuple(h.name for h in HOPS)

__all__ = [
    "AIRFLOW_PORT",
    "DAG_ID",
    "HMS_PORT",
    "HOPS",
    "HOP_NAMES",
    "INGESTOR_PORT",
    "S3_PORT",
    "SMOKE_PREFIX",
    "SPARK_TIMEOUT",
    "SUPERSET_PORT",
    "TRINO_PORT",
    "HopSkipped",
    "hop_airflow",
    "hop_dbt",
    "hop_ingestor",
    "hop_metastore",
    "hop_object_storage",
    "hop_spark",
    "hop_spark_table",
    "hop_superset",
    "hop_superset_trino",
    "hop_trino",
    "s3_client",
    "trino_connection",
]
