"""The locks on RBD images (librbd, python3-rbd): who holds them, and breaking them.

Volumes use RBD's exclusive-lock feature: the QEMU that writes to a volume holds its lock, and
a QEMU started elsewhere takes it over cleanly from an owner that is gone (librbd blocklists
the old owner's exact address when it breaks the lock). What is left for an administrator
(`pvc vm flush-locks`) is an owner that librbd cannot take over from on its own, and the
advisory locks of older tools (`rbd lock add`): `owners` lists both, `break_locks` breaks
both. Calls go through the shared connection (pvc.drivers.ceph), whose rados_osd_op_timeout
bounds each one; failures raise CephError (CephUnavailable for a timeout), with errno ENOENT
for an image that does not exist.
"""

from typing import Any

from pvc.drivers import import_binding
from pvc.drivers.ceph_images import opened_image
from pvc.drivers.contracts import CephDriver


def _image(ceph: CephDriver, pool: str, image: str, action: Any) -> Any:
    """`action(rbd_module, opened_image)` on the image, opened read-write (librbd lists lock
    owners only to a writable handle; opening one takes no lock)."""
    with opened_image(ceph, pool, image) as opened:
        return action(import_binding("rbd"), opened)


def _exclusive_owners(rbd: Any, opened: Any) -> list[dict[str, Any]]:
    """The exclusive-lock owners; none when the lock is an advisory one (librbd's managed
    lock and `rbd lock add` share one RADOS lock: it says EBUSY then)."""
    try:
        return list(opened.lock_get_owners())
    except rbd.ImageBusy:
        return []


def _advisory(opened: Any) -> list[tuple[str, str, str]]:
    """(client, cookie, address) of each advisory locker."""
    return list((opened.list_lockers() or {}).get("lockers", []))


def owners(ceph: CephDriver, pool: str, image: str) -> list[str]:
    """Every holder of a lock on the image: exclusive-lock owners ("exclusive ADDR") and
    advisory lockers ("advisory CLIENT COOKIE ADDR")."""

    def read(rbd: Any, opened: Any) -> list[str]:
        found = [f"exclusive {owner['owner']}" for owner in _exclusive_owners(rbd, opened)]
        if not found:
            found = [f"advisory {c} {cookie} {a}" for c, cookie, a in _advisory(opened)]
        return found

    return _image(ceph, pool, image, read)


def break_locks(ceph: CephDriver, pool: str, image: str) -> list[str]:
    """Breaks every lock on the image (as `owners` names them): an exclusive lock through
    librbd (which blocklists its owner's client, so a live one cannot write on), else the
    advisory ones; the ones broken."""

    def breaks(rbd: Any, opened: Any) -> list[str]:
        broken = []
        for owner in _exclusive_owners(rbd, opened):
            opened.lock_break(owner["mode"], owner["owner"])
            broken.append(f"exclusive {owner['owner']}")
        if not broken:
            for client, cookie, address in _advisory(opened):
                opened.break_lock(client, cookie)
                broken.append(f"advisory {client} {cookie} {address}")
        return broken

    return _image(ceph, pool, image, breaks)
