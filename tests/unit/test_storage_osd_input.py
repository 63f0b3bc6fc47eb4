"""What pvc.ops.storage_osd accepts as an OSD id, a device path, a weight and a flag, and the
reason line of a failed ceph-volume (pvc.drivers.ceph_volume.reason)."""

import pytest

from pvc.drivers.ceph_volume import reason, scrub
from pvc.errors import InvalidInput
from pvc.ops import storage_osd


@pytest.mark.parametrize("given, number", [("0", 0), ("17", 17), (3, 3)])
def test_osd_ids_are_numbers(given, number):
    assert storage_osd.require_osd_id(given) == number


@pytest.mark.parametrize("given", ["", "-1", "osd.1", "1.0", "١", "1234567890", " 1"])
def test_anything_else_is_no_osd_id(given):
    with pytest.raises(InvalidInput, match="invalid OSD id"):
        storage_osd.require_osd_id(given)


@pytest.mark.parametrize("device", ["/dev/sdb", "/dev/disk/by-id/ata-X_1.2", "/dev/..x"])
def test_device_paths(device):
    assert storage_osd.require_device(device) == device


@pytest.mark.parametrize(
    "device", ["sdb", "/dev/", "/dev//sdb", "/dev/./sdb", "/dev/../sdb", "/dev/s db", "/dev/\x01",
               "/dev/é", "/" + "x" * 255, None]
)  # fmt: skip
def test_bad_device_paths(device):
    with pytest.raises(InvalidInput, match="invalid device"):
        storage_osd.require_device(device)


def test_weights():
    assert storage_osd.require_weight(None) is None
    assert storage_osd.require_weight(2) == 2.0
    for bad in (-0.1, 1001, float("nan"), True, "1"):
        with pytest.raises(InvalidInput):
            storage_osd.require_weight(bad)


def test_a_bad_flag_is_refused_with_the_list_before_ceph_is_asked():
    with pytest.raises(InvalidInput) as refused:
        storage_osd.set_option(None, "nosuch", "set")  # no Ceph needed to refuse
    assert "noout" in refused.value.message and "pause" in refused.value.message


def test_the_reason_of_a_failed_prepare_is_before_its_rollback():
    output = """Running command: /usr/bin/ceph-osd --mkfs -i 1
 stderr: 2026-12-02T05:23:01 -1 bluestore(/var/lib/ceph/osd/ceph-1) _open_bdev: (13) Denied
 stderr: 1: /lib/x86_64-linux-gnu/libc.so.6(+0x3c050) [0x7f92eac5a050]
 stderr: NOTE: a copy of the executable, or `objdump -rdS <executable>` is needed to interpret this.
--> Was unable to complete a new OSD, will rollback changes
Running command: /usr/bin/ceph osd purge-new osd.1 --yes-i-really-mean-it
-->  RuntimeError: Unable to find any LV for zapping OSD: 1
"""
    assert reason(output).endswith("_open_bdev: (13) Denied")
    assert reason("") == "no reason given"
    assert reason("wipefs: error: /dev/x: probing initialization failed\n") == (
        "wipefs: error: /dev/x: probing initialization failed"
    )


def test_keys_never_leave_in_a_reason():
    key = "AQDZqA9rmSpoKhAAYEjleanjJaTIsAlML+uGIQ=="
    assert scrub(f'"osd_key": "{key}",\nnext') == '"osd_key": "<key>",\nnext'
