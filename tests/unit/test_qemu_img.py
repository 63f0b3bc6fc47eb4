"""qemu_img without Ceph: what `qemu-img info` answers that names another file is refused;
convert kills and waits for a qemu-img that makes no progress (its stderr drained apart)."""

import os

import pytest

from pvc.drivers import qemu_img
from pvc.drivers.ceph import Ceph, CephError

SPARSE = {"format": "vmdk", "filename": "rbd:p/i", "format-specific": {"data": {
    "create-type": "monolithicSparse", "extents": [{"filename": "rbd:p/i"}]}}}  # fmt: skip


def test_images_naming_other_files_are_found():
    assert qemu_img.other_files(SPARSE) is None
    assert qemu_img.other_files({"format": "qcow2", "format-specific": {"data": {}}}) is None
    backed = {"format": "qcow2", "backing-filename": "rbd:other/vol:conf=/etc/ceph/x"}
    assert qemu_img.other_files(backed) == "names a backing file (other/vol)"
    data = {"format": "qcow2", "format-specific": {"data": {"data-file": "/etc/shadow"}}}
    assert qemu_img.other_files(data) == "names an external data file (/etc/shadow)"
    flat = {**SPARSE, "format-specific": {"data": {"create-type": "monolithicFlat"}}}
    assert "of type monolithicFlat" in qemu_img.other_files(flat)
    extents = [{"filename": "rbd:p/i"}, {"filename": "/etc/ceph/keyring"}]
    two = {**SPARSE, "format-specific": {"data": {"create-type": "monolithicSparse",
                                                  "extents": extents}}}  # fmt: skip
    assert qemu_img.other_files(two) == "has an extent in another file (/etc/ceph/keyring)"


def test_the_rbd_spec_bounds_librbd():
    spec = qemu_img.rbd_spec(Ceph("/c.conf", "admin", "/k", timeout=5), "p", "i")
    assert spec.endswith(":client_mount_timeout=5:rados_mon_op_timeout=5:rados_osd_op_timeout=30")


def test_a_stalled_qemu_img_is_killed_and_waited_for(tmp_path, monkeypatch):
    pid_file = tmp_path / "pid"
    script = tmp_path / "qemu-img"
    script.write_text(  # floods stderr (more than a pipe holds), then hangs
        f"#!/bin/sh\necho $$ > {pid_file}\nhead -c 300000 /dev/zero | tr '\\0' x >&2\n"
        "echo '(1.00/100%)'\nexec sleep 60\n"
    )
    script.chmod(0o755)
    monkeypatch.setattr(qemu_img, "QEMU_IMG", str(script))
    monkeypatch.setattr(qemu_img, "POLL_INTERVAL", 0.1)
    seen: list[float] = []
    ceph = Ceph("/c.conf", "admin", "/k")
    with pytest.raises(CephError, match="made no progress for 1 s"):
        qemu_img.convert(ceph, "p", "s", "qcow2", "t", lambda p: seen.append(p) or True, 1.0)
    assert 1.0 in seen
    with pytest.raises(ProcessLookupError):  # exited and reaped
        os.kill(int(pid_file.read_text()), 0)
