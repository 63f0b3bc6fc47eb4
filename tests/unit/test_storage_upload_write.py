"""storage_upload.receive: librbd refusing a write at once (rbd.Error raised by aio_write, not
reported through its completion) is a CephError (the API's one-line answer), not a 500; the
piece's slot and count are given back."""

import errno

import pytest
import rbd

from pvc.drivers.ceph import Ceph, CephError
from pvc.ops import storage_ceph, storage_upload


class RefusingImage:
    def aio_write(self, data, offset, oncomplete):
        raise rbd.InvalidArgument("bad offset", errno=errno.EINVAL)


def test_a_write_librbd_refuses_at_once_is_a_ceph_error(monkeypatch):
    monkeypatch.setattr(storage_ceph, "connection", lambda config: Ceph("/c", "admin", "/k"))
    upload = storage_upload.Upload(None, None, "p", "v", "raw", 10, "v", {"id": "t1"}, 0,
                                   handle=RefusingImage())  # fmt: skip
    monkeypatch.setitem(storage_upload._uploads, "t1", upload)
    with pytest.raises(
        CephError, match=r"a write to volume 'p/v': .*RBD invalid argument"
    ) as caught:
        storage_upload.receive("p", "v", "t1", 0, b"x")
    assert caught.value.errno == errno.EINVAL
    assert upload.writing == 0 and upload.received == 0
    assert upload.slots.acquire(blocking=False)  # the slot was given back
