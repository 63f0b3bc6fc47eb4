"""Storage status endpoints: Ceph's health and utilisation as the primary last collected them
(pvc.node.storage_stats), answered from memory with their freshness (pvc.ops.storage_status):
stale or absent statistics are said to be so, never an error."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import record
from pvc.ops import storage_status

TAGS = ("storage",)
NULLABLE_NUMBER = {"type": "number", "nullable": True}
NULLABLE_TEXT = {"type": "string", "nullable": True}
NULLABLE_OBJECT = {"type": "object", "nullable": True}
FRESHNESS = {
    "freshness": {"type": "string", "enum": ["current", "stale", "absent"]},
    "updated": NULLABLE_NUMBER,
    "age": NULLABLE_NUMBER,
    "message": NULLABLE_TEXT,
}


@endpoint(
    "GET",
    "/storage",
    summary="A summary of the storage cluster: health, OSDs, placement groups, raw usage, and "
    "how many OSDs, pools and volumes pvc manages",
    tags=TAGS,
    returns=record(
        "freshness",
        **FRESHNESS,
        health=NULLABLE_TEXT,
        error=NULLABLE_TEXT,
        checks={"type": "array", "items": {"type": "string"}},
        osd_count=NULLABLE_OBJECT,
        pgs=NULLABLE_OBJECT,
        raw=NULLABLE_OBJECT,
        records={"type": "object"},
    ),
)
def get_storage(ctx: Context) -> dict[str, Any]:
    return storage_status.summary(ctx.zk, ctx.config)


@endpoint(
    "GET",
    "/storage/ceph/status",
    summary="Ceph's status as last collected: health and its checks, monitors and quorum, "
    "OSDs (counts and each one's up/in, host, weight), flags, placement groups, client I/O",
    tags=TAGS,
    returns=record("freshness", **FRESHNESS, status=NULLABLE_OBJECT),
)
def get_ceph_status(ctx: Context) -> dict[str, Any]:
    return storage_status.status(ctx.zk, ctx.config)


@endpoint(
    "GET",
    "/storage/ceph/utilization",
    summary="Ceph's utilisation as last collected: raw capacity in all and per device class, "
    "and every pool's stored and used bytes, free space and objects",
    tags=TAGS,
    returns=record("freshness", **FRESHNESS, utilization=NULLABLE_OBJECT),
)
def get_ceph_utilization(ctx: Context) -> dict[str, Any]:
    return storage_status.utilization(ctx.zk, ctx.config)
