"""pvc.drivers.volume_images on the session's real Ceph, without kernel RBD: a filesystem made
in a sparse file, loop-mounted, written, unmounted (its loop device freed), imported into a
volume and exported back byte for byte; an import into a clone writes only the chunks that
changed, so the clone keeps sharing the rest with its parent (Ceph's `rbd du` says so)."""

# ruff: noqa: F811 (the fixtures are imported)

import os
import subprocess

import pytest

from pvc.drivers import volume_images
from pvc.errors import InvalidInput, PvcError
from tests.volume_rig import MIB, ceph, images, rbd_pool, used_bytes  # noqa: F401 (fixtures)

SIZE = 64 * MIB


def same_bytes(first, second) -> bool:
    return subprocess.run(["cmp", "-s", str(first), str(second)]).returncode == 0


def write_in(path, files: dict[str, str], directory) -> None:
    """Mounts the filesystem in `path`, writes `files` into it, unmounts it."""
    directory.mkdir(exist_ok=True)
    volume_images.mount(str(path), str(directory))
    try:
        for name, text in files.items():
            (directory / name).write_text(text)
    finally:
        volume_images.unmount(str(directory))


def read_in(path, name: str, directory) -> str:
    directory.mkdir(exist_ok=True)
    volume_images.mount(str(path), str(directory))
    try:
        return (directory / name).read_text()
    finally:
        volume_images.unmount(str(directory))


@pytest.mark.parametrize(("filesystem", "size"), [("ext4", SIZE), ("xfs", 320 * MIB)])
def test_a_filesystem_goes_into_a_volume_and_comes_back(tmp_path, ceph, images, rbd_pool,
                                                        filesystem, size):  # fmt: skip
    made = tmp_path / "disk.img"
    volume_images.make_filesystem(str(made), size, filesystem, ["-L", "pvcroot"])
    assert made.stat().st_size == size
    assert made.stat().st_blocks * 512 < size  # sparse
    write_in(made, {"hello": "hello from pvc\n"}, tmp_path / "mnt")
    assert volume_images.mounted_under(str(tmp_path)) == []
    assert volume_images.loops_of([str(made)]) == []

    images.create(rbd_pool, "vol", size)
    written = volume_images.import_image(ceph, rbd_pool, "vol", str(made))
    assert 0 < written < size  # the zero chunks were not written
    back = tmp_path / "back.img"
    volume_images.export_image(ceph, rbd_pool, "vol", str(back))
    assert back.stat().st_size == size and same_bytes(made, back)
    assert back.stat().st_blocks * 512 < size  # holes stay holes
    assert read_in(back, "hello", tmp_path / "mnt") == "hello from pvc\n"
    label = subprocess.run(["blkid", "-o", "value", "-s", "LABEL", str(back)],
                           capture_output=True, text=True)  # fmt: skip
    assert label.stdout.strip() == "pvcroot"  # the filesystem_args reached mkfs
    assert volume_images.loops_of([str(made), str(back)]) == []


def test_an_import_into_a_clone_writes_only_what_changed(tmp_path, ceph, ceph_service, images,
                                                         rbd_pool):  # fmt: skip
    base = tmp_path / "base.img"
    volume_images.make_filesystem(str(base), SIZE, "ext4")
    big = os.urandom(20 * MIB).hex()  # 40 MiB of text: a base image with data worth sharing
    write_in(base, {"big": big, "small": "before\n"}, tmp_path / "mnt")
    images.create(rbd_pool, "base", SIZE)
    volume_images.import_image(ceph, rbd_pool, "base", str(base))
    images.snapshot_create(rbd_pool, "base", "golden")
    images.clone(rbd_pool, "base", "vm1_vda", "golden")

    copy = tmp_path / "copy.img"
    volume_images.export_image(ceph, rbd_pool, "vm1_vda", str(copy))
    assert same_bytes(base, copy)  # an export reads through to the parent
    assert volume_images.import_image(ceph, rbd_pool, "vm1_vda", str(copy)) == 0  # unchanged
    write_in(copy, {"small": "after\n"}, tmp_path / "mnt")
    written = volume_images.import_image(ceph, rbd_pool, "vm1_vda", str(copy))
    assert 0 < written <= 6 * volume_images.CHUNK  # a file, its inode, the journal

    base_used = used_bytes(ceph_service, rbd_pool, "base")
    clone_used = used_bytes(ceph_service, rbd_pool, "vm1_vda")
    assert base_used >= 40 * MIB
    assert 0 < clone_used <= written  # the clone holds what was written, shares the rest
    back = tmp_path / "back.img"
    volume_images.export_image(ceph, rbd_pool, "vm1_vda", str(back))
    assert same_bytes(copy, back)
    assert read_in(back, "small", tmp_path / "mnt") == "after\n"
    parent = tmp_path / "parent.img"
    volume_images.export_image(ceph, rbd_pool, "base", str(parent))
    assert same_bytes(base, parent)  # the parent is untouched


def test_holes_are_written_as_zeros_where_the_volume_held_data(tmp_path, ceph, images, rbd_pool):
    images.create(rbd_pool, "vol", 8 * MIB)
    data = tmp_path / "data.img"
    data.write_bytes(b"\xab" * (8 * MIB))
    assert volume_images.import_image(ceph, rbd_pool, "vol", str(data)) == 8 * MIB
    with open(data, "wb") as file:  # the second half becomes a hole
        file.write(b"\xab" * (4 * MIB))
        file.truncate(8 * MIB)
    assert volume_images.import_image(ceph, rbd_pool, "vol", str(data)) == 4 * MIB
    back = tmp_path / "back.img"
    volume_images.export_image(ceph, rbd_pool, "vol", str(back))
    assert same_bytes(data, back)


def test_bad_input_gets_the_tools_own_words(tmp_path, ceph, images, rbd_pool):
    with pytest.raises(InvalidInput, match="filesystem 'nofs' is not known on this node"):
        volume_images.make_filesystem(str(tmp_path / "a.img"), SIZE, "nofs")
    with pytest.raises(InvalidInput, match="is not known"):
        volume_images.make_filesystem(str(tmp_path / "a.img"), SIZE, "../../bin/sh")
    with pytest.raises(PvcError, match="^mkfs.ext4: invalid block size - 999$"):
        volume_images.make_filesystem(str(tmp_path / "b.img"), SIZE, "ext4", ["-b", "999"])
    with pytest.raises(PvcError, match="^mkfs.xfs: Filesystem must be larger than 300MB"):
        volume_images.make_filesystem(str(tmp_path / "c.img"), SIZE, "xfs")

    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(MIB))
    (tmp_path / "mnt").mkdir()
    with pytest.raises(PvcError, match="^mount: .*wrong fs type") as refused:
        volume_images.mount(str(blank), str(tmp_path / "mnt"))
    assert "\n" not in refused.value.message and "dmesg" not in refused.value.message
    assert volume_images.loops_of([str(blank)]) == []

    images.create(rbd_pool, "small", MIB)
    big = tmp_path / "big.img"
    big.write_bytes(b"x" * (2 * MIB))
    with pytest.raises(PvcError, match=f"does not fit in volume '{rbd_pool}/small'"):
        volume_images.import_image(ceph, rbd_pool, "small", str(big))
    with pytest.raises(PvcError, match=f"volume {rbd_pool}/nothing"):
        volume_images.export_image(ceph, rbd_pool, "nothing", str(tmp_path / "n.img"))
