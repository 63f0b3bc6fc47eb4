"""OVA endpoints: list, describe and remove OVAs; upload one as the volume upload does (POST
starts it, PUT sends its pieces, POST .../upload/finish completes it: pvc.ops.provisioner_ova)."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MESSAGE, listing, record
from pvc.api.params import Param, name_param
from pvc.api.routes.storage_pool import CEPH_DOWN
from pvc.api.routes.storage_upload import (
    FILE_SIZE,
    FINISH_RESPONSES,
    OFFSET,
    PIECE_RESPONSES,
    RECEIVED,
    STARTED,
    TASK,
)
from pvc.limits import PATTERN_MAX
from pvc.ops import provisioner_ova

TAGS = ("provisioner",)
INTEGER = {"type": "integer"}
OVA = record("name", "pool", volumes={"type": "array"}, vcpus=INTEGER, memory=INTEGER,
             nics=INTEGER, ovf={"type": "object"})  # fmt: skip
UPLOAD = "/provisioner/ova/<ova>/upload"
NOT_HERE = "No such upload in progress on this API"


@endpoint(
    "GET",
    "/provisioner/ova",
    summary="Every OVA: its pool, volumes and virtual hardware",
    tags=TAGS,
    params=(Param("limit", str, "Only the OVAs whose name contains this", max_length=PATTERN_MAX),),
    responses={404: "The cluster is not initialised"},
    returns=listing(OVA),
)
def get_ovas(ctx: Context, limit: str | None) -> list[dict[str, Any]]:
    return provisioner_ova.list_ovas(ctx.zk, limit)


@endpoint(
    "POST",
    "/provisioner/ova",
    summary="Start an upload of an OVA (202 with the task's id); then PUT its pieces to "
    "/provisioner/ova/<ova>/upload and POST .../upload/finish",
    tags=TAGS,
    params=(
        name_param("name", "The OVA's name (and its profile's)", "OVA name", required=True),
        name_param("pool", "The pool of its volumes", "pool name", required=True),
        FILE_SIZE,
    ),
    responses={
        202: "Started: send the pieces",
        400: "Bad parameter",
        404: "No such pool",
        409: "The OVA or a profile of its name exists, it is being uploaded, or the pool "
        "would fill past storage.max_fill_ratio",
        502: "Ceph refused it",
        503: CEPH_DOWN,
    },
    returns=STARTED,
)
def post_ova(ctx: Context, name: str, pool: str, file_size: int) -> tuple[int, dict[str, Any]]:
    return 202, provisioner_ova.begin(ctx.zk, ctx.config, name, pool, file_size)


@endpoint(
    "PUT",
    UPLOAD,
    summary="One piece of an OVA upload (application/octet-stream) written at `offset`",
    tags=TAGS,
    params=(TASK, OFFSET),
    responses={404: NOT_HERE, **PIECE_RESPONSES},
    returns=RECEIVED,
    octets=True,
)
def put_piece(ctx: Context, ova: str, task: str, offset: int, data: bytes) -> dict[str, Any]:
    return provisioner_ova.receive(ova, task, offset, data)


@endpoint(
    "POST",
    UPLOAD + "/finish",
    summary="Complete an OVA upload whose bytes have all arrived (202: follow the task, which "
    "reads the OVF, converts the disks and records the OVA and its profile)",
    tags=TAGS,
    params=(TASK,),
    responses={404: NOT_HERE, **FINISH_RESPONSES},
    returns=record("message", "task"),
)
def post_finish(ctx: Context, ova: str, task: str) -> tuple[int, dict[str, Any]]:
    return 202, provisioner_ova.finish(ova, task)


@endpoint(
    "GET",
    "/provisioner/ova/<ova>",
    summary="One OVA: its pool, volumes, virtual hardware and OVF summary",
    tags=TAGS,
    responses={404: "No such OVA"},
    returns=OVA,
)
def get_ova(ctx: Context, ova: str) -> dict[str, Any]:
    return provisioner_ova.info(ctx.zk, ova)


@endpoint(
    "DELETE",
    "/provisioner/ova/<ova>",
    summary="Remove an OVA, its volumes and its ova profile",
    tags=TAGS,
    responses={
        404: "No such OVA",
        409: "Another profile uses it, or a VM uses one of its volumes (or a clone of one)",
        502: "Ceph refused it",
        503: CEPH_DOWN,
    },
    returns=MESSAGE,
)
def delete_ova(ctx: Context, ova: str) -> dict[str, Any]:
    return provisioner_ova.remove(ctx.zk, ctx.config, ova)
