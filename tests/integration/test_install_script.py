"""pvc.node.install_runner with the example scripts (scripts/provisioner) on real volumes of
the session's Ceph: each phase reported in order, the XML of create() returned, and what the
script wrote found in the volumes afterwards (exported and mounted again), never through
kernel RBD; VMBuilder.write never following a symbolic link of the image out to the host."""

# ruff: noqa: F811 (the fixtures are imported)

import logging
import os
import stat
import subprocess
from pathlib import Path

import pytest

from pvc.drivers import volume_images
from pvc.errors import PvcError
from pvc.node import install_runner, install_script
from tests.local_cluster import REPO
from tests.storage_rig import ceph_config
from tests.volume_rig import (  # noqa: F401 (fixtures)
    MIB,
    ceph,
    clone_of_base,
    context,
    disk,
    images,
    rbd_pool,
    used_bytes,
)

EXAMPLES = REPO / "scripts" / "provisioner"
TIMEOUT = 600.0  # mkfs, export and import on a loaded host


def run(ceph_service, name: str, ctx: dict, phases: list | None = None) -> str:
    text = (EXAMPLES / f"{name}.py").read_text()
    seen = [] if phases is None else phases
    config = ceph_config(ceph_service)
    return install_runner.run(name, text, ctx, config, seen.append, lambda: False, TIMEOUT)


def _content(path) -> str | None:
    return path.read_text() if path.is_file() else "(a folder)" if path.is_dir() else None


def read_files(ceph, pool: str, volume: str, tmp_path, *names: str) -> dict[str, str | None]:
    """The files `names` in the filesystem of the volume (exported into a file, mounted): their
    text, "(a folder)" or None."""
    image = tmp_path / f"{volume}.export"
    volume_images.export_image(ceph, pool, volume, str(image))
    mounted = tmp_path / f"{volume}.mnt"
    mounted.mkdir()
    volume_images.mount(str(image), str(mounted))
    try:
        return {n: _content(mounted / n) for n in names}
    finally:
        volume_images.unmount(str(mounted))
        image.unlink()


def test_noop_makes_filesystems_and_mounts_them_root_first(tmp_path, ceph, ceph_service, images,
                                                           rbd_pool, caplog):  # fmt: skip
    images.create(rbd_pool, "vm1_vda", 64 * MIB)
    images.create(rbd_pool, "vm1_vdb", 32 * MIB)
    disks = [  # /var (deeper) first: it is still mounted after "/"
        disk(rbd_pool, "vm1_vdb", "vdb", 32 * MIB, filesystem="ext4", mountpoint="/var/data",
             filesystem_args=["-L", "data"]),
        disk(rbd_pool, "vm1_vda", filesystem="ext4", mountpoint="/",
             filesystem_args=["-L", "root"]),
    ]  # fmt: skip
    ctx = context(disks)
    phases: list[str] = []
    with caplog.at_level(logging.INFO, logger="pvc.node.install_runner"):
        xml = run(ceph_service, "noop", ctx, phases)
    assert xml == ctx["xml"]
    assert phases == list(install_script.PHASES)
    assert "install script 'noop': nothing to install for vm1" in caplog.text

    for volume, label in (("vm1_vda", "root"), ("vm1_vdb", "data")):
        exported = tmp_path / f"{volume}.img"
        volume_images.export_image(ceph, rbd_pool, volume, str(exported))
        found = subprocess.run(["blkid", "-o", "export", str(exported)], capture_output=True,
                               text=True).stdout  # fmt: skip
        assert "TYPE=ext4" in found and f"LABEL={label}" in found
        exported.unlink()
    # vdb was mounted inside vda's filesystem: its mountpoint exists there
    assert read_files(ceph, rbd_pool, "vm1_vda", tmp_path, "var/data") == {"var/data": "(a folder)"}


def test_root_files_writes_into_a_clone_of_a_base_image(tmp_path, ceph, ceph_service, images,
                                                        rbd_pool):  # fmt: skip
    def fill(mounted: Path) -> None:
        (mounted / "etc").mkdir()
        (mounted / "etc" / "hostname").write_text("base\n")
        (mounted / "payload").write_bytes(bytes(range(256)) * 131072)  # 32 MiB to share

    clone_of_base(tmp_path, ceph, images, rbd_pool, "web1_vda", fill)
    vda = disk(rbd_pool, "web1_vda", mountpoint="/", source_volume="base")
    arguments = {"release": "bookworm", "role": "web"}
    run(ceph_service, "root-files", context([vda], "web1", arguments))

    files = read_files(ceph, rbd_pool, "web1_vda", tmp_path, "etc/hostname",
                       "etc/pvc-guest/provisioned", "etc/pvc-guest/arg-release",
                       "etc/pvc-guest/arg-role")  # fmt: skip
    assert files == {
        "etc/hostname": "web1\n",
        "etc/pvc-guest/provisioned": "provisioned web1 by demo\n",
        "etc/pvc-guest/arg-release": "bookworm\n",
        "etc/pvc-guest/arg-role": "web\n",
    }
    assert read_files(ceph, rbd_pool, "base", tmp_path, "etc/hostname") == {
        "etc/hostname": "base\n"  # the base image is untouched
    }
    base_used = used_bytes(ceph_service, rbd_pool, "base")
    assert base_used > 32 * MIB
    assert used_bytes(ceph_service, rbd_pool, "web1_vda") < base_used / 2  # the rest is shared


def test_root_files_refuses_a_profile_without_a_root_disk(ceph_service, images, rbd_pool):
    images.create(rbd_pool, "vm1_vda", 64 * MIB)
    ctx = context([disk(rbd_pool, "vm1_vda", filesystem="ext4", mountpoint="/srv")])
    try:
        run(ceph_service, "root-files", ctx)
    except install_runner.PvcError as exc:
        assert exc.message == (
            "install script 'root-files', prepare: the profile's storage template mounts no "
            "disk at '/'"
        )
    else:
        raise AssertionError("root-files ran without a root disk")


LINK = "is a symbolic link in the VM's filesystem (not followed: it would resolve on the host)"


def test_root_files_never_writes_through_a_link_of_the_image(tmp_path, ceph, ceph_service,
                                                             images, rbd_pool):  # fmt: skip
    host_file = tmp_path / "passwd"
    host_file.write_text("root:x:0:0\n")

    def fill(mounted: Path) -> None:
        (mounted / "etc").mkdir()
        (mounted / "etc" / "hostname").symlink_to(host_file)

    clone_of_base(tmp_path, ceph, images, rbd_pool, "web1_vda", fill)
    vda = disk(rbd_pool, "web1_vda", mountpoint="/", source_volume="base")
    with pytest.raises(PvcError) as refused:
        run(ceph_service, "root-files", context([vda], "web1"))
    assert refused.value.message == f"install script 'root-files', install: '/etc/hostname' {LINK}"
    assert host_file.read_text() == "root:x:0:0\n"


def test_write_makes_folders_and_refuses_what_would_leave_the_vm(tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    work = tmp_path / "work"
    builder = install_script.VMBuilder(context([]), str(work), None, print)
    with pytest.raises(ValueError, match="no disk is mounted at '/'"):
        builder.write("/etc/hostname", "vm1\n")
    image = tmp_path / "root.img"
    volume_images.make_filesystem(str(image), 16 * MIB, "ext4")
    root = work / "root"
    root.mkdir(parents=True)
    volume_images.mount(str(image), str(root))
    try:
        (root / "etc").symlink_to(host)
        (root / "var").mkdir()
        (root / "var" / "run").symlink_to(host)
        (root / "var" / "lock").symlink_to(host / "lock")  # dangling: mkdir must not follow
        (root / "file").write_text("")
        os.mkfifo(root / "fifo")
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        builder.write("srv/new/../deep/file", "made\n")
        assert (root / "srv" / "deep" / "file").read_text() == "made\n"
        refused = {
            "/etc/hostname": f"'/etc' {LINK}",
            "/var/run/x/y": f"'/var/run' {LINK}",
            "/var/lock/x": f"'/var/lock' {LINK}",
            "/etc": f"'/etc' {LINK}",
            "/../../host/x": "'/../../host/x' is outside the VM's root",
            "/file/x": "'/file' is not a folder in the VM's filesystem",
            "/fifo": "'/fifo' is not a regular file in the VM's filesystem",
            "/null": "'/null' is not a regular file in the VM's filesystem",
            "/": "'/' names no file",
        }
        for path, message in refused.items():
            with pytest.raises(ValueError) as failed:
                builder.write(path, "x\n")
            assert str(failed.value) == message
    finally:
        volume_images.unmount(str(root))
    assert list(host.iterdir()) == []
