"""The `upload` job kind in the node daemons: the cleanup of an upload whose API process died.

An upload is received and completed by the API process that started it (pvc.ops.storage_
upload), which holds its claim. A claim that vanished (that process died) makes the primary
hand the task back to the queue; the primary's daemon then runs it here: it removes the
images the upload made (its staging image, and the volume unless its record exists; the
dead process's exclusive lock on them broken first) and ends the task failed, saying why.
"""

from typing import Any

from pvc.config import Config
from pvc.drivers import rbd_locks
from pvc.errors import PvcError
from pvc.node.jobs import Job
from pvc.ops import storage_ceph
from pvc.zk.store import Store


class UploadCleanup:
    name = "upload"

    def __init__(self, view: Store, config: Config):
        self.view = view
        self.config = config

    def run(self, job: Job) -> Any:
        pool, volume, image = job.args["pool"], job.args["volume"], job.args["image"]
        images = storage_ceph.images(self.config)
        leftovers = [image] if self.view.exists(("volume", pool, volume)) else [volume, image]
        for name in dict.fromkeys(leftovers):
            # the dead API process held the image's lock: break it, or wait for its watch
            storage_ceph.undo(
                rbd_locks.break_locks, storage_ceph.connection(self.config), pool, name
            )
            storage_ceph.undo(images.remove, pool, name)
        why = job.record.get("interrupted") or "its API process stopped"
        raise PvcError(f"upload of '{pool}/{volume}' ended: {why}; its images were removed")


def kinds(view: Store, config: Config) -> dict[str, Any]:
    """The storage job kinds of a node that reaches Ceph."""
    return {UploadCleanup.name: UploadCleanup(view, config)} if config.get("ceph.enabled") else {}
