"""RBD images (pvc's volumes) and their snapshots through librbd (python3-rbd).

Every call opens what it needs on the shared connection's I/O context (`Ceph.ioctx`), so it
is bounded by the connection's OSD and monitor timeouts; librbd's exceptions become one-line
CephErrors with their errno (ENOENT: no such image or snapshot, EEXIST: exists already,
EBUSY: a snapshot with clones, an image in use) or CephUnavailable (Ceph did not answer).

Images are made with layering (clones), exclusive-lock (one writer: a VM and its recovered
copy can never write at once), object-map and fast-diff (fast size and diff queries).
Snapshots that are cloned are protected first (what clone format 1 requires, harmless with
format 2); removing an image removes its snapshots, unprotecting them as needed, but only
after checking that nothing refuses the removal (no watcher, no clone of any snapshot), so a
refused removal destroys nothing.
"""

import errno as errno_codes
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

from pvc.drivers import import_binding
from pvc.drivers.ceph import Ceph, CephError
from pvc.drivers.contracts import CephDriver

FEATURES = ("layering", "exclusive-lock", "object-map", "fast-diff")
_FEATURE_BITS = {
    "layering": "RBD_FEATURE_LAYERING",
    "striping": "RBD_FEATURE_STRIPINGV2",
    "exclusive-lock": "RBD_FEATURE_EXCLUSIVE_LOCK",
    "object-map": "RBD_FEATURE_OBJECT_MAP",
    "fast-diff": "RBD_FEATURE_FAST_DIFF",
    "deep-flatten": "RBD_FEATURE_DEEP_FLATTEN",
    "journaling": "RBD_FEATURE_JOURNALING",
    "data-pool": "RBD_FEATURE_DATA_POOL",
}


def _rbd() -> Any:
    return import_binding("rbd")


def feature_bits(names: tuple[str, ...] = FEATURES) -> int:
    rbd = _rbd()
    bits = 0
    for name in names:
        bits |= getattr(rbd, _FEATURE_BITS[name])
    return bits


def feature_names(bits: int) -> list[str]:
    rbd = _rbd()
    return [name for name, attr in _FEATURE_BITS.items() if bits & getattr(rbd, attr)]


@contextmanager
def translated(ceph: CephDriver, what: str) -> Iterator[None]:
    """Runs librbd calls, their exceptions translated to a CephError about `what`."""
    rbd = _rbd()
    rados = import_binding("rados")
    try:
        yield
    except (rbd.Error, rados.Error) as exc:
        raise ceph.translate(exc, what) from None


@contextmanager
def opened_image(
    ceph: CephDriver,
    pool: str,
    name: str,
    snapshot: str | None = None,
    read_only: bool = False,
) -> Iterator[Any]:
    """The image (at `snapshot`), opened for the block and closed after it; librbd's errors
    in the block become CephErrors about the volume."""
    rbd = _rbd()
    with ceph.ioctx(pool) as ioctx, translated(ceph, f"volume {pool}/{name}"):
        image = rbd.Image(ioctx, name, snapshot=snapshot, read_only=read_only)
        try:
            yield image
        finally:
            image.close()


class Images:
    """The RBD images of a Ceph cluster (one connection, shared)."""

    def __init__(self, ceph: Ceph):
        self.ceph = ceph

    def _call(self, what: str) -> AbstractContextManager[None]:
        return translated(self.ceph, what)

    def _image(
        self, pool: str, name: str, snapshot: str | None = None, read_only: bool = False
    ) -> AbstractContextManager[Any]:
        return opened_image(self.ceph, pool, name, snapshot, read_only)

    # --- images -----------------------------------------------------------------------------

    def names(self, pool: str) -> list[str]:
        with self.ceph.ioctx(pool) as ioctx, self._call(f"pool {pool}"):
            return sorted(_rbd().RBD().list(ioctx))

    def info(self, pool: str, name: str) -> dict[str, Any]:
        """{"size": bytes, "features": [...], "parent": "pool/image@snap" or None,
        "snapshots": [{"name", "size", "protected"}...]}."""
        rbd = _rbd()
        with self._image(pool, name) as image:
            try:
                spec = image.get_parent_image_spec()
                parent = f"{spec['pool_name']}/{spec['image_name']}@{spec['snap_name']}"
            except rbd.ImageNotFound:
                parent = None
            snapshots = [
                {
                    "name": s["name"],
                    "size": s["size"],
                    "protected": image.is_protected_snap(s["name"]),
                }
                for s in image.list_snaps()
            ]
            return {
                "size": image.size(),
                "features": feature_names(image.features()),
                "parent": parent,
                "snapshots": snapshots,
            }

    def create(self, pool: str, name: str, size: int) -> None:
        rbd = _rbd()
        with self.ceph.ioctx(pool) as ioctx, self._call(f"volume {pool}/{name}"):
            rbd.RBD().create(ioctx, name, size, old_format=False, features=feature_bits())

    def watchers(self, pool: str, name: str) -> list[str]:
        """The addresses of the clients that have the image open (a read-only look, which
        registers no watch of its own)."""
        with self._image(pool, name, read_only=True) as image:
            return sorted(w["addr"] for w in image.watchers_list())

    def clones(self, pool: str, name: str, snapshot: str) -> list[str]:
        """The "pool/image" of each clone of `name@snapshot`."""
        with self._image(pool, name, snapshot, read_only=True) as image:
            return sorted(f"{c['pool']}/{c['image']}" for c in image.list_children2())

    def require_removable(self, pool: str, name: str) -> None:
        """EBUSY (a CephError) if the image is open or one of its snapshots has clones."""
        what = f"volume {pool}/{name}"
        watchers = self.watchers(pool, name)
        if watchers:
            raise CephError(f"{what} is open by {', '.join(watchers)}", errno_codes.EBUSY)
        for snapshot in self.info(pool, name)["snapshots"]:
            clones = self.clones(pool, name, snapshot["name"])
            if clones:
                raise CephError(
                    f"{what}@{snapshot['name']} has clones: {', '.join(clones)}",
                    errno_codes.EBUSY,
                )

    def remove(self, pool: str, name: str) -> None:
        """Removes an image and its snapshots; EBUSY, with nothing removed, if the image is
        open or a snapshot has clones (require_removable)."""
        self.require_removable(pool, name)
        with self._image(pool, name) as image:
            for snapshot in list(image.list_snaps()):
                if image.is_protected_snap(snapshot["name"]):
                    image.unprotect_snap(snapshot["name"])
                image.remove_snap(snapshot["name"])
        with self.ceph.ioctx(pool) as ioctx, self._call(f"volume {pool}/{name}"):
            _rbd().RBD().remove(ioctx, name)

    def resize(self, pool: str, name: str, size: int) -> None:
        with self._image(pool, name) as image:
            image.resize(size)

    def rename(self, pool: str, name: str, new_name: str) -> None:
        with self.ceph.ioctx(pool) as ioctx, self._call(f"volume {pool}/{name}"):
            _rbd().RBD().rename(ioctx, name, new_name)

    def clone(self, pool: str, name: str, new_name: str, snapshot: str | None = None) -> None:
        """A copy-on-write clone of `name@snapshot` (protected first), or a full copy of
        `name` without a snapshot; either in the same pool, with pvc's features."""
        if snapshot is None:
            with self.ceph.ioctx(pool) as ioctx, self._image(pool, name) as image:
                image.copy(ioctx, new_name, features=feature_bits())
            return
        with self._image(pool, name) as image:
            protected = not image.is_protected_snap(snapshot)
            if protected:
                image.protect_snap(snapshot)
        try:
            with self.ceph.ioctx(pool) as ioctx, self._call(f"volume {pool}/{name}@{snapshot}"):
                rbd = _rbd()
                rbd.RBD().clone(ioctx, name, snapshot, ioctx, new_name, features=feature_bits())
        except CephError:
            if protected:
                with suppress(CephError):  # the clone's error is the one to report
                    self.unprotect_unused(pool, name, snapshot)
            raise

    def unprotect_unused(self, pool: str, name: str, snapshot: str) -> None:
        """Unprotects `name@snapshot` if it is protected and has no clones (pvc protects a
        snapshot only to clone it); a failure is the caller's to report."""
        if self.clones(pool, name, snapshot):
            return
        with self._image(pool, name) as image:
            if image.is_protected_snap(snapshot):
                image.unprotect_snap(snapshot)

    def writer(self, pool: str, name: str) -> AbstractContextManager[Any]:
        """The open image (librbd's Image) for writes, for uploads: `write(data, offset)`
        (errors translated), and `aio_write(data, offset, oncomplete)`, whose completion's
        `get_return_value()` is a negative errno on failure. Writes past the end fail."""
        return self._image(pool, name)

    # --- snapshots --------------------------------------------------------------------------

    def snapshot_create(self, pool: str, name: str, snapshot: str) -> None:
        with self._image(pool, name) as image:
            image.create_snap(snapshot)

    def snapshot_rename(self, pool: str, name: str, snapshot: str, new_name: str) -> None:
        with self._image(pool, name) as image:
            image.rename_snap(snapshot, new_name)

    def snapshot_remove(self, pool: str, name: str, snapshot: str) -> None:
        """Removes a snapshot (unprotected first); EBUSY if it has clones."""
        with self._image(pool, name) as image:
            if image.is_protected_snap(snapshot):
                image.unprotect_snap(snapshot)
            image.remove_snap(snapshot)

    def snapshot_rollback(self, pool: str, name: str, snapshot: str) -> None:
        with self._image(pool, name) as image:
            image.rollback_to_snap(snapshot)

    def snapshot_list(self, pool: str, name: str) -> list[dict[str, Any]]:
        return self.info(pool, name)["snapshots"]
