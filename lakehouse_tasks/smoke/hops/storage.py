"""Layer 1, storage: the object-storage hop (write, read back, delete through S3)."""

from __future__ import annotations

import hashlib
from typing import Any

from ..context import SmokeContext
from ..model import HopFailure

S3_PORT = 9000  # inside the container (the compose files publish it on the host)
SMOKE_PREFIX = "_lakehouse-smoke"


def _bucket(ctx: SmokeContext) -> str:
    buckets = ctx.value("MINIO_BUCKETS", "lakehouse warehouse raw").split()
    return "lakehouse" if "lakehouse" in buckets else buckets[0]


def s3_client(ctx: SmokeContext) -> Any:
    import boto3
    from botocore.config import Config

    host, port = ctx.services.endpoint("minio", S3_PORT)
    return boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id=ctx.secret("MINIO_ROOT_USER"),
        aws_secret_access_key=ctx.secret("MINIO_ROOT_PASSWORD"),
        region_name=ctx.value("S3_REGION", "us-east-1"),
        config=Config(
            connect_timeout=5,
            read_timeout=20,
            retries={"max_attempts": 2},
            s3={"addressing_style": "path"},
        ),
    )


def _s3_cause(exc: Exception, bucket: str) -> str:
    from botocore.exceptions import ClientError, EndpointConnectionError

    if isinstance(exc, EndpointConnectionError):
        return "object storage does not answer on its API port; check that minio runs."
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchBucket", "404"}:
            return f"bucket {bucket!r} does not exist; run the minio-init job (redeploy)."
        if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}:
            return (
                f"object storage refused the credentials ({code}); check MINIO_ROOT_USER and "
                "MINIO_ROOT_PASSWORD."
            )
        return f"object storage answered {code or 'an error'}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def hop_object_storage(ctx: SmokeContext) -> str:
    s3 = s3_client(ctx)
    bucket = _bucket(ctx)
    key = f"{SMOKE_PREFIX}/{ctx.run_id}/canary.txt"
    body = f"lakehouse smoke canary {ctx.run_id}\n".encode() * 64
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)

        def remove() -> None:
            s3.delete_object(Bucket=bucket, Key=key)

        ctx.on_cleanup(f"s3://{bucket}/{key}", remove)
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if hashlib.sha256(got).digest() != hashlib.sha256(body).digest():
            raise HopFailure(f"s3://{bucket}/{key} read back different bytes than were written.")
        s3.delete_object(Bucket=bucket, Key=key)
        left = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0)
        if left:
            raise HopFailure(f"s3://{bucket}/{key} is still listed after its deletion.")
    except HopFailure:
        raise
    except Exception as exc:
        raise HopFailure(_s3_cause(exc, bucket)) from None
    return f"wrote, read back and deleted {len(body)} bytes in s3://{bucket}/{SMOKE_PREFIX}/"
