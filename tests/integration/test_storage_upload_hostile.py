"""Hostile disk images, against the session's real Ceph: an uploaded qcow2 or vmdk that names
another file (a backing file, a flat vmdk extent on the host) is refused and leaves nothing;
qemu-img never reads a backing file even when the check is bypassed; a stopped conversion
kills qemu-img and waits for it, so its images can be removed at once."""

# ruff: noqa: F811 (the storage fixture is imported)

import os
import pathlib
import subprocess
import time

import pytest

from pvc.drivers import qemu_img
from pvc.ops import storage_ceph
from tests.conftest import fails
from tests.integration.test_storage_upload import call
from tests.storage_rig import ceph_config, storage  # noqa: F401 (a fixture)

MIB = 1 << 20
SECRET = b"THE-KEYRING-SECRET-" * 64


def secret_file(tmp_path):
    path = tmp_path / "secret.raw"
    path.write_bytes(SECRET + b"\0" * (MIB - len(SECRET)))
    return path


def backed_qcow2(tmp_path, backing: str):
    image = tmp_path / "evil.qcow2"
    subprocess.run(["qemu-img", "create", "-u", "-f", "qcow2", "-F", "raw", "-b", backing,
                    str(image), "1M"], check=True, capture_output=True)  # fmt: skip
    return image


def flat_vmdk(tmp_path, target):
    image = tmp_path / "evil.vmdk"
    image.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        f'createType="monolithicFlat"\n\nRW 2048 FLAT "{target}" 0\n\n'
        'ddb.adapterType = "ide"\n'
    )
    return image


def nothing_made(storage) -> None:
    assert storage.rbd_ls() == []
    assert storage.json("storage", "volume", "list", storage.pool) == []


@pytest.mark.parametrize("image_format", ["qcow2", "vmdk"])
def test_an_image_naming_a_host_file_is_refused(storage, tmp_path, image_format):
    secret = secret_file(tmp_path)
    make = backed_qcow2 if image_format == "qcow2" else flat_vmdk
    image = make(tmp_path, str(secret))
    line = fails(storage.pvc("storage", "volume", "upload", storage.pool, "evil", str(image),
                             "--image-format", image_format, "--wait"))  # fmt: skip
    words = "names a backing file" if image_format == "qcow2" else "is of type monolithicFlat"
    assert f"refused: the {image_format} image {words}" in line and "\n" not in line
    nothing_made(storage)


def test_a_backing_volume_is_refused(storage, tmp_path):
    """`rbd:POOL/VOLUME` as the backing file: another volume's bytes (any pool's)."""
    assert storage.ceph.rbd("create", "--size", "1", f"{storage.pool}/victim").returncode == 0
    image = backed_qcow2(tmp_path, f"rbd:{storage.pool}/victim")
    line = fails(storage.pvc("storage", "volume", "upload", storage.pool, "evil", str(image),
                             "--image-format", "qcow2", "--wait"))  # fmt: skip
    assert f"refused: the qcow2 image names a backing file ({storage.pool}/victim)" in line
    assert storage.rbd_ls() == ["victim"]


def staged(storage, tmp_path, image, name: str) -> None:
    path = f"{storage.pool}/{name}"
    assert storage.ceph.rbd("import", str(image), path).returncode == 0


def test_convert_never_opens_a_backing_file_even_unchecked(storage, tmp_path):
    """convert alone (no virtual_size check): the backing file is not read."""
    staged(storage, tmp_path, backed_qcow2(tmp_path, str(secret_file(tmp_path))), "stage")
    assert storage.ceph.rbd("create", "--size", "1", f"{storage.pool}/target").returncode == 0
    ceph = storage_ceph.connection(ceph_config(storage.ceph))
    qemu_img.convert(ceph, storage.pool, "stage", "qcow2", "target", lambda percent: True)
    out = tmp_path / "target.raw"
    assert storage.ceph.rbd("export", f"{storage.pool}/target", str(out)).returncode == 0
    assert out.read_bytes() == b"\0" * MIB  # the secret's bytes never reached the volume


def test_a_stopped_conversion_leaves_images_removable(storage, tmp_path):
    raw = tmp_path / "big.raw"
    with raw.open("wb") as file:
        for _ in range(64):
            file.write(SECRET[:1024] * 1024)
    image = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)],
                   check=True)  # fmt: skip
    staged(storage, tmp_path, image, "stage")
    assert storage.ceph.rbd("create", "--size", "64", f"{storage.pool}/target").returncode == 0
    ceph = storage_ceph.connection(ceph_config(storage.ceph))
    started = time.monotonic()
    with pytest.raises(qemu_img.Stopped):
        qemu_img.convert(ceph, storage.pool, "stage", "qcow2", "target", lambda percent: False)
    assert time.monotonic() - started < 10
    assert not qemu_imgs_on(storage.pool)  # killed and reaped, not left running
    deadline = time.monotonic() + 45  # a killed client's watch lasts 30 s at most
    for name in ("stage", "target"):
        while (
            done := storage.ceph.rbd("rm", "--no-progress", f"{storage.pool}/{name}")
        ).returncode:
            assert time.monotonic() < deadline, done.stderr
            time.sleep(1)
    assert storage.rbd_ls() == []


def qemu_imgs_on(pool: str) -> list[str]:
    """The qemu-img processes whose command line names `pool`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            line = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if entry.isdigit() and line.startswith(b"qemu-img") and pool.encode() in line:
            found.append(entry)
    return found


def test_a_cancel_during_a_conversion_leaves_nothing(storage, tmp_path):
    """The pool's librbd QoS slows qemu-img (2 MiB/s) so the cancel lands mid-conversion."""
    raw = tmp_path / "disk.raw"
    raw.write_bytes(os.urandom(16 * MIB))
    image = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)],
                   check=True)  # fmt: skip
    data = image.read_bytes()
    base = f"/storage/ceph/volume/{storage.pool}/slow/upload"
    status, answer = call(storage, "POST", base, {"file_size": len(data), "image_format": "qcow2"})
    assert status == 202, answer
    task = answer["task"]
    for offset in range(0, len(data), MIB):
        piece = data[offset : offset + MIB]
        assert call(storage, "PUT", base, {"task": task, "offset": offset}, piece)[0] == 200
    limit = storage.ceph.rbd("config", "pool", "set", storage.pool, "rbd_qos_bps_limit", "2097152")
    assert limit.returncode == 0, limit.stderr
    assert call(storage, "POST", base + "/finish", {"task": task})[0] == 202
    deadline = time.monotonic() + 30
    while "converting" not in call(storage, "GET", f"/tasks/{task}")[1]["progress"]["message"]:
        assert time.monotonic() < deadline, "the conversion did not start"
        time.sleep(0.1)
    assert call(storage, "DELETE", f"/tasks/{task}")[0] == 200
    deadline = time.monotonic() + 60  # the killed qemu-img's watches expire in 30 s
    while (record := call(storage, "GET", f"/tasks/{task}")[1])["state"] != "cancelled":
        assert time.monotonic() < deadline, f"not cancelled: {record}"
        time.sleep(0.1)
    nothing_made(storage)
