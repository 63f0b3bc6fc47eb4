"""Volume upload endpoints: start an upload, send its pieces, finish it (pvc.ops.
storage_upload: the pieces go straight into the RBD image; the task shows the progress)."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import record
from pvc.api.params import Param, name_param
from pvc.api.routes.storage_pool import CEPH_DOWN, TAGS
from pvc.drivers.qemu_img import FORMATS
from pvc.ops import storage_upload
from pvc.ops.sizes import SIZE_MAX

PATH = "/storage/ceph/volume/<pool>/<volume>/upload"
TASK = name_param("task", "The upload's task", "task id", required=True)
NOT_HERE = "No such pool, or no such upload in progress on this API"
# what an upload of any kind (volume, OVA: pvc.api.routes.provisioner_ova) shares
FILE_SIZE = Param("file_size", int, "The file's size in bytes", required=True, minimum=1,
                  maximum=SIZE_MAX - 1)  # fmt: skip
OFFSET = Param("offset", int, "Where the piece goes in the file", required=True, minimum=0,
               maximum=SIZE_MAX - 1)  # fmt: skip
PIECE_RESPONSES = {
    400: "Bad parameter, or bytes outside the file",
    409: "The upload was cancelled, failed or has all its bytes",
    502: "Ceph refused the write",
    503: CEPH_DOWN,
}
RECEIVED = {"type": "object", "required": ["received"],
            "properties": {"received": {"type": "integer"}}}  # fmt: skip
STARTED = record("message", "task", piece_max={"type": "integer"})
FINISH_RESPONSES = {202: "Completing", 409: "Bytes are missing, or it is finishing"}


@endpoint(
    "POST",
    PATH,
    summary="Start an upload of a disk image into a new volume (202 with the task's id); "
    "then PUT its pieces and POST .../upload/finish",
    tags=TAGS,
    params=(
        Param("image_format", str, "The image's format", default="raw", choices=FORMATS),
        FILE_SIZE,
    ),
    responses={
        202: "Started: send the pieces",
        400: "Bad parameter",
        404: "No such pool",
        409: "The volume exists, or the pool would fill past storage.max_fill_ratio",
        502: "Ceph refused it",
        503: CEPH_DOWN,
    },
    returns=STARTED,
)
def post_upload(
    ctx: Context, pool: str, volume: str, image_format: str, file_size: int
) -> tuple[int, dict[str, Any]]:
    return 202, storage_upload.begin(ctx.zk, ctx.config, pool, volume, image_format, file_size)


@endpoint(
    "PUT",
    PATH,
    summary="One piece of an upload (application/octet-stream) written at `offset`",
    tags=TAGS,
    params=(TASK, OFFSET),
    responses={404: NOT_HERE, **PIECE_RESPONSES},
    returns=RECEIVED,
    octets=True,
)
def put_piece(
    ctx: Context, pool: str, volume: str, task: str, offset: int, data: bytes
) -> dict[str, Any]:
    return storage_upload.receive(pool, volume, task, offset, data)


@endpoint(
    "POST",
    PATH + "/finish",
    summary="Complete an upload whose bytes have all arrived (202: follow the task)",
    tags=TAGS,
    params=(TASK,),
    responses={404: NOT_HERE, **FINISH_RESPONSES},
    returns=record("message", "task"),
)
def post_finish(ctx: Context, pool: str, volume: str, task: str) -> tuple[int, dict[str, Any]]:
    return 202, storage_upload.finish(pool, volume, task)
