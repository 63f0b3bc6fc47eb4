"""The `upload` and `ova_upload` job kinds in the node daemons: the cleanup of an upload whose
API process died.

An upload is received and completed by the API process that started it (pvc.ops.storage_
upload), which holds its claim. A claim that vanished (that process died) makes the primary
hand the task back to the queue; the primary's daemon then runs it here: it removes the
images the upload made (its staging image, and what it may have made from it without a
record: the volume, or an OVA's volumes; pvc.ops.provisioner_ova.leftovers), the dead
process's exclusive lock on them broken first, and ends the task failed, saying why.
"""

from collections.abc import Callable
from typing import Any

from pvc.config import Config
from pvc.drivers import rbd_locks
from pvc.errors import PvcError
from pvc.node.jobs import Job
from pvc.ops import provisioner_ova, storage_ceph
from pvc.zk.store import Store

# (view, config, the job's args) -> (what the upload made, for the message; its images)
Leftovers = Callable[[Store, Config, dict[str, Any]], tuple[str, list[str]]]


def volume_leftovers(view: Store, config: Config, args: dict[str, Any]) -> tuple[str, list[str]]:
    pool, volume, image = args["pool"], args["volume"], args["image"]
    made = [image] if view.exists(("volume", pool, volume)) else [volume, image]
    return f"'{pool}/{volume}'", made


class UploadCleanup:
    def __init__(self, name: str, leftovers: Leftovers, view: Store, config: Config):
        self.name = name
        self.leftovers = leftovers
        self.view = view
        self.config = config

    def run(self, job: Job) -> Any:
        pool = job.args["pool"]
        what, leftovers = self.leftovers(self.view, self.config, job.args)
        images = storage_ceph.images(self.config)
        for name in dict.fromkeys(leftovers):
            # the dead API process held the image's lock: break it, or wait for its watch
            storage_ceph.undo(
                rbd_locks.break_locks, storage_ceph.connection(self.config), pool, name
            )
            storage_ceph.undo(images.remove, pool, name)
        why = job.record.get("interrupted") or "its API process stopped"
        raise PvcError(f"upload of {what} ended: {why}; its images were removed")


def kinds(view: Store, config: Config) -> dict[str, Any]:
    """The storage job kinds of a node that reaches Ceph."""
    if not config.get("ceph.enabled"):
        return {}
    return {
        "upload": UploadCleanup("upload", volume_leftovers, view, config),
        provisioner_ova.KIND: UploadCleanup(
            provisioner_ova.KIND, provisioner_ova.leftovers, view, config
        ),
    }
