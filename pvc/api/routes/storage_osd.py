"""OSD endpoints (REFERENCE 4.2): list and add OSDs, one OSD, removing it, its in/out state,
and the cluster-wide OSD flags (`POST /storage/ceph/option`). Add and remove answer 202 with
the task their node's daemon runs (see routes/tasks.py); the rest answer at once. Monitor
commands go from this API's host to Ceph; a Ceph that is not configured here or does not
answer is a 503 in one line (pvc.drivers.ceph.CephUnavailable)."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MAYBE_TASK, MESSAGE, listing, record
from pvc.api.params import Param, name_param
from pvc.drivers import ceph
from pvc.ops import storage_osd

TAGS = ("storage",)
OSD = record("id", "node", "made_by_pvc")
TASK_ANSWER = record("message", "task")
BAD_ID = "Invalid OSD id (its number)"
NOT_FOUND = "No OSD of that id, or the cluster is not initialised"
NO_CEPH = "Ceph is not configured on the API's host, or does not answer"


@endpoint(
    "GET",
    "/storage/ceph/osd",
    summary="Every OSD: pvc's records with their statistics, and the OSDs Ceph has that pvc "
    "did not make (made_by_pvc false)",
    tags=TAGS,
    params=(name_param("node", "Only the OSDs of this node", "node name"),),
    responses={400: "Bad parameter", 404: "The cluster is not initialised"},
    returns=listing(OSD),
)
def get_osds(ctx: Context, node: str | None) -> list[dict[str, Any]]:
    return storage_osd.list_osds(ctx.zk, node)


@endpoint(
    "POST",
    "/storage/ceph/osd",
    summary="Make a node's disk an OSD: a task the node's daemon runs (202 with its id)",
    tags=TAGS,
    params=(
        name_param("node", "The node that has the disk", "node name", required=True),
        Param(
            "device",
            str,
            "The whole disk's absolute path (e.g. /dev/sdb); it must hold nothing",
            required=True,
            max_length=storage_osd.DEVICE_MAX,
            pattern=storage_osd.DEVICE_PATTERN,
            label="device",
            rule="an absolute, normalised path in printable ASCII without spaces",
        ),
        Param(
            "weight",
            float,
            "Its CRUSH weight (default: Ceph's, from the disk's size)",
            minimum=0,
            maximum=storage_osd.WEIGHT_MAX,
        ),
    ),
    responses={
        400: "Bad parameter",
        404: "The node does not exist",
        409: "The node does not use Ceph or is not running, or the disk is already an OSD",
    },
    returns=TASK_ANSWER,
)
def post_osd(
    ctx: Context, node: str, device: str, weight: float | None
) -> tuple[int, dict[str, Any]]:
    return 202, storage_osd.add(ctx.zk, node, device, weight)


@endpoint(
    "GET",
    "/storage/ceph/osd/<osd>",
    summary="One OSD: its node, disk, state and statistics",
    tags=TAGS,
    responses={400: BAD_ID, 404: NOT_FOUND},
    returns=OSD,
)
def get_osd(ctx: Context, osd: str) -> dict[str, Any]:
    return storage_osd.info(ctx.zk, osd)


@endpoint(
    "DELETE",
    "/storage/ceph/osd/<osd>",
    summary="Remove an OSD: out, drained, stopped, purged, its disk wiped; a task its node's "
    "daemon runs (202 with its id). The OSD of a node declared dead is purged at once (200, "
    "no task; its disk stays as it is)",
    tags=TAGS,
    responses={
        400: BAD_ID,
        404: NOT_FOUND,
        409: "Its loss would leave a pool below min_size (the pools are named), or pvc did "
        "not make it",
        503: NO_CEPH,
    },
    returns=MAYBE_TASK,
)
def delete_osd(ctx: Context, osd: str) -> tuple[int, dict[str, Any]]:
    answer = storage_osd.remove(ctx.zk, ceph.shared(ctx.config), osd)
    return (200 if answer["task"] is None else 202), answer


@endpoint(
    "GET",
    "/storage/ceph/osd/<osd>/state",
    summary="Whether Ceph has the OSD up and in, now",
    tags=TAGS,
    responses={400: BAD_ID, 404: "Ceph has no OSD of that id", 503: NO_CEPH},
    returns=record("id", "up", "in"),
)
def get_osd_state(ctx: Context, osd: str) -> dict[str, Any]:
    return storage_osd.state(ceph.shared(ctx.config), osd)


@endpoint(
    "POST",
    "/storage/ceph/osd/<osd>/state",
    summary="Mark an OSD in or out (Ceph moves data onto or off it)",
    tags=TAGS,
    params=(Param("state", str, "in or out", required=True, choices=storage_osd.STATES),),
    responses={400: "Bad parameter or id", 404: "Ceph has no OSD of that id", 503: NO_CEPH},
    returns=MESSAGE,
)
def post_osd_state(ctx: Context, osd: str, state: str) -> dict[str, Any]:
    return storage_osd.set_state(ceph.shared(ctx.config), osd, state)


@endpoint(
    "POST",
    "/storage/ceph/option",
    summary="Set or unset a cluster-wide OSD flag (noout, norebalance, ...)",
    tags=TAGS,
    params=(
        Param("option", str, "The flag", required=True, choices=storage_osd.FLAGS),
        Param("action", str, "set or unset", required=True, choices=("set", "unset")),
    ),
    responses={400: "Bad parameter", 503: NO_CEPH},
    returns=MESSAGE,
)
def post_option(ctx: Context, option: str, action: str) -> dict[str, Any]:
    return storage_osd.set_option(ceph.shared(ctx.config), option, action)
