"""`pvc provisioner ova` through the built dist/pvc, a real API and the session's real Ceph: an
OVA built here (qemu-img VMDKs and an OVF written by tests.ova_files) is imported with its
disks' content, hardware and profile; each broken OVA is refused with its reason and leaves
nothing in Ceph or Zookeeper; a removal is refused while the OVA is used, then removes it all."""

# ruff: noqa: F811 (the storage fixture is imported)

import json
import os
import subprocess

import pytest

from pvc.ops import provisioner_store
from tests.conftest import fails, ok
from tests.integration.test_storage_upload import exported
from tests.ova_files import MIB, VMDK, Hardware, OvaDisk, build_ova, image_ova, ovf_text, raw_disk
from tests.storage_rig import storage  # noqa: F401 (a fixture)


def upload(storage, name, path, *more):
    return storage.pvc("provisioner", "ova", "upload", name, str(path), "--pool", storage.pool,
                       *more)  # fmt: skip


def nothing_left(storage, name):
    assert storage.rbd_ls() == []
    assert storage.json("storage", "volume", "list", storage.pool) == []
    assert storage.json("provisioner", "ova", "list") == []
    assert not storage.zk.exists(provisioner_store.key("profile", name))


def test_an_ova_is_imported_with_its_disks_hardware_and_profile(storage, tmp_path):
    disks = [OvaDisk("root.vmdk", raw_disk(4 * MIB), 4 * MIB),
             OvaDisk("data.vmdk", raw_disk(2 * MIB, seed=1), 3 * MIB)]  # fmt: skip
    path = build_ova(tmp_path, disks=disks, hardware=Hardware(vcpus=2, memory_mib=768, nics=2))
    record = json.loads(ok(upload(storage, "appliance", path, "--wait", "-f", "json")))
    assert record["state"] == "done", record
    volumes = ["ova_appliance_vda", "ova_appliance_vdb"]
    assert record["result"] == {"name": "appliance", "pool": storage.pool, "volumes": volumes,
                                "profile": "appliance"}  # fmt: skip
    assert sorted(storage.rbd_ls()) == volumes  # the staging image is gone
    assert exported(storage, volumes[0], tmp_path) == disks[0].raw
    assert exported(storage, volumes[1], tmp_path) == disks[1].raw + bytes(MIB)
    ova = storage.json("provisioner", "ova", "info", "appliance")
    assert (ova["pool"], ova["vcpus"], ova["memory"], ova["nics"]) == (storage.pool, 2, 768, 2)
    assert ova["volumes"] == [
        {"disk_id": "vda", "volume": volumes[0], "size": 4 * MIB},
        {"disk_id": "vdb", "volume": volumes[1], "size": 3 * MIB},
    ]
    assert [d["file"] for d in ova["ovf"]["disks"]] == ["root.vmdk", "data.vmdk"]
    assert storage.json("storage", "volume", "info", storage.pool, volumes[1])["size"] == 3 * MIB
    profile = storage.zk.read(provisioner_store.key("profile", "appliance"))
    assert profile["type"] == "ova" and profile["ova"] == "appliance"
    assert profile["system_template"] is None and profile["arguments"] == {}
    assert [o["name"] for o in storage.json("provisioner", "ova", "list", "appl")] == ["appliance"]
    assert "appliance" in ok(storage.pvc("provisioner", "ova", "list"))
    line = fails(upload(storage, "appliance", path))
    assert line.endswith("OVA 'appliance' already exists")


def test_a_removal_is_refused_while_the_ova_is_used_then_removes_it_all(storage, tmp_path):
    image = tmp_path / "disk.img"  # a disk image file not a whole number of MiB
    image.write_bytes(raw_disk(3 * MIB + 512))
    ok(upload(storage, "base", image_ova(tmp_path, image), "--wait"))
    assert exported(storage, "ova_base_vda", tmp_path) == image.read_bytes() + bytes(MIB - 512)
    other = {"name": "web", "type": "ova", "ova": "base", "arguments": {}}
    storage.zk.write({provisioner_store.key("profile", "web"): other})
    line = fails(storage.pvc("provisioner", "ova", "remove", "base", "--yes"))
    assert line.endswith("OVA 'base' is used by profile web")
    storage.zk.write({}, delete=[provisioner_store.key("profile", "web")])
    vm = storage.use(f"{storage.pool}/ova_base_vda", state="stop", name="vm1")
    line = fails(storage.pvc("provisioner", "ova", "remove", "base", "--yes"))
    assert f"its volume '{storage.pool}/ova_base_vda' is used by VM(s) vm1" in line
    assert storage.rbd_ls() == ["ova_base_vda"]
    xml = storage.zk.read(("domain.xml", vm)).replace("ova_base_vda", "elsewhere")
    storage.zk.write({("domain.xml", vm): xml})
    out = ok(storage.pvc("provisioner", "ova", "remove", "base", "--yes"))
    assert "OVA 'base' removed, with its volumes and profile" in out
    nothing_left(storage, "base")
    line = fails(storage.pvc("provisioner", "ova", "remove", "base", "--yes"))
    assert line.endswith("OVA 'base' does not exist")


FLAT_VMDK = (
    b"# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
    b'createType="monolithicFlat"\nRW 2048 FLAT "/etc/hostname" 0\n'
).ljust(1024, b"#")  # a descriptor whose extent is a host file


def backed_qcow2(tmp_path) -> bytes:
    """A qcow2 disk whose backing file is a host file."""
    path = tmp_path / "backed.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw",
                    str(path), "1M"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return path.read_bytes()


def random_bytes(tmp_path):
    path = tmp_path / "random.ova"
    path.write_bytes(os.urandom(3 * MIB))
    return path


def one_disk(tmp_path, disk: OvaDisk, disk_format: str = VMDK):
    return build_ova(tmp_path, disks=[disk], ovf=ovf_text([disk]).replace(VMDK, disk_format))


BROKEN = {
    "not_tar": (random_bytes, "the OVA is not a tar archive"),
    "no_ovf": (
        lambda tmp: build_ova(tmp, ovf_name="vm.txt"),
        "the OVA has no OVF descriptor (a .ovf file)",
    ),
    "lacks_disk": (
        lambda tmp: build_ova(tmp, leave_out=("disk0.vmdk",)),
        "the OVF names disk file 'disk0.vmdk', which the OVA lacks",
    ),
    "no_system": (
        lambda tmp: build_ova(tmp, ovf="<Envelope><DiskSection/></Envelope>"),
        "the OVF has no VirtualSystem",
    ),
    "too_big": (
        lambda tmp: one_disk(tmp, OvaDisk("disk0.vmdk", raw_disk(3 * MIB), 2 * MIB)),
        "disk vda (disk0.vmdk) holds 3M, more than its capacity in the OVF (2M)",
    ),
    "not_vmdk": (
        lambda tmp: one_disk(tmp, OvaDisk("disk0.vmdk", b"no disk\n" * 1000, MIB, False)),
        "disk vda (disk0.vmdk): not a vmdk disk image",
    ),
    "flat_vmdk": (
        lambda tmp: one_disk(tmp, OvaDisk("disk0.vmdk", FLAT_VMDK, MIB, False)),
        "disk vda (disk0.vmdk): refused: the vmdk image is of type monolithicFlat",
    ),
    "backed_qcow2": (
        lambda tmp: one_disk(tmp, OvaDisk("d.qcow2", backed_qcow2(tmp), MIB, False), "qcow2"),
        "disk vda (d.qcow2): refused: the qcow2 image names a backing file (/etc/hostname)",
    ),
}


@pytest.mark.parametrize("which", BROKEN)
def test_a_broken_ova_is_refused_and_leaves_nothing(storage, tmp_path, which):
    build, reason = BROKEN[which]
    line = fails(upload(storage, "broken", build(tmp_path), "--wait"))
    assert reason in line, line
    nothing_left(storage, "broken")


def test_a_qcow2_disk_of_any_length_is_imported(storage, tmp_path):
    raw = tmp_path / "disk.raw"
    raw.write_bytes(raw_disk(2 * MIB))
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
                   check=True)  # fmt: skip
    # a qcow2 file need not be whole 512-byte blocks (here: 100 bytes more); the tar pads it
    disk = OvaDisk("disk.qcow2", qcow2.read_bytes() + bytes(100), 2 * MIB, as_vmdk=False)
    ok(upload(storage, "q", one_disk(tmp_path, disk, "http://www.qemu.org/qcow2"), "--wait"))
    assert exported(storage, "ova_q_vda", tmp_path) == raw.read_bytes()
    assert storage.json("provisioner", "ova", "info", "q")["ovf"]["disks"][0]["format"] == "qcow2"
