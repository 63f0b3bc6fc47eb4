"""Small OVAs for the tests: raw disks of known content converted by qemu-img to
streamOptimized VMDKs, an OVF written here, the two in a tar; and broken ones."""

import os
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20
ENVELOPE = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VMDK = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"


@dataclass
class OvaDisk:
    file: str
    raw: bytes  # the disk's content
    capacity: int  # what the OVF says (bytes)
    as_vmdk: bool = True  # False: `raw` goes into the OVA as it is


@dataclass
class Hardware:
    vcpus: int = 2
    memory_mib: int = 512
    nics: int = 1
    extra_items: str = ""  # more Items, as XML
    disk_refs: list[str] | None = None  # the disk items' HostResource ids (default: every disk)
    files: dict[str, str] = field(default_factory=dict)  # extra References: id -> href


def ovf_text(disks: list[OvaDisk], hardware: Hardware | None = None) -> str:
    """An OVF 1.x descriptor of a VM with these disks (files file0.., disks disk0..)."""
    hardware = hardware or Hardware()
    files = "".join(
        f'<File ovf:id="file{i}" ovf:href="{d.file}"/>' for i, d in enumerate(disks)
    ) + "".join(f'<File ovf:id="{k}" ovf:href="{v}"/>' for k, v in hardware.files.items())
    disk_section = "".join(
        f'<Disk ovf:diskId="disk{i}" ovf:fileRef="file{i}" ovf:capacity="{d.capacity // MIB}" '
        f'ovf:capacityAllocationUnits="byte * 2^20" ovf:format="{VMDK}"/>'
        for i, d in enumerate(disks)
    )
    refs = hardware.disk_refs if hardware.disk_refs is not None else [
        f"disk{i}" for i in range(len(disks))
    ]  # fmt: skip
    items = [
        f"<rasd:ResourceType>3</rasd:ResourceType>"
        f"<rasd:VirtualQuantity>{hardware.vcpus}</rasd:VirtualQuantity>",
        "<rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>"
        f"<rasd:ResourceType>4</rasd:ResourceType>"
        f"<rasd:VirtualQuantity>{hardware.memory_mib}</rasd:VirtualQuantity>",
        *["<rasd:ResourceType>10</rasd:ResourceType>"] * hardware.nics,
        *[
            f"<rasd:HostResource>ovf:/disk/{ref}</rasd:HostResource>"
            "<rasd:ResourceType>17</rasd:ResourceType>"
            for ref in refs
        ],
    ]
    item_xml = "".join(f"<Item>{item}</Item>" for item in items) + hardware.extra_items
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<Envelope xmlns="{ENVELOPE}" xmlns:ovf="{ENVELOPE}" xmlns:rasd="{RASD}">'
        f"<References>{files}</References>"
        f"<DiskSection><Info>disks</Info>{disk_section}</DiskSection>"
        f'<VirtualSystem ovf:id="testvm"><Info>a test VM</Info>'
        f"<VirtualHardwareSection><Info>hardware</Info>{item_xml}</VirtualHardwareSection>"
        f"</VirtualSystem></Envelope>"
    )


def raw_disk(size: int, seed: int = 0) -> bytes:
    """A disk with random blocks and holes (what streamOptimized compresses and skips)."""
    data = bytearray(size)
    chunk = 64 * 1024
    for offset in range(seed % 3 * chunk, size, 3 * chunk):
        data[offset : offset + chunk] = os.urandom(min(chunk, size - offset))
    return bytes(data)


def vmdk(raw: bytes, path: Path) -> Path:
    source = path.with_suffix(".raw")
    source.write_bytes(raw)
    vmdk_of(source, path)
    source.unlink()
    return path


def vmdk_of(source: Path, path: Path) -> Path:
    """The raw disk image file `source` as a streamOptimized VMDK at `path`."""
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o",
                    "subformat=streamOptimized", str(source), str(path)], check=True)  # fmt: skip
    return path


def build_ova(
    directory: Path,
    name: str = "test.ova",
    disks: list[OvaDisk] | None = None,
    hardware: Hardware | None = None,
    ovf: str | None = None,
    leave_out: tuple[str, ...] = (),
    ovf_name: str = "vm.ovf",
) -> Path:
    """A tar of the OVF `ovf_name` (`ovf`, or one describing `disks`) and the disks' VMDKs
    (but those named in `leave_out`)."""
    disks = disks if disks is not None else [OvaDisk("disk0.vmdk", raw_disk(4 * MIB), 4 * MIB)]
    work = directory / f"{name}.d"
    work.mkdir(exist_ok=True)
    files = []
    for disk in disks:
        if disk.file in leave_out:
            continue
        if disk.as_vmdk:
            vmdk(disk.raw, work / disk.file)
        else:
            (work / disk.file).write_bytes(disk.raw)
        files.append(work / disk.file)
    text = ovf if ovf is not None else ovf_text(disks, hardware)
    return _tar(directory / name, text, ovf_name, files)


def image_ova(directory: Path, image: Path, name: str = "image.ova",
              hardware: Hardware | None = None) -> Path:  # fmt: skip
    """An OVA of one disk made from the raw disk image file `image` (e.g. the bootable
    tests.guest_image.build_image()), its capacity the file's size rounded up to a MiB."""
    work = directory / f"{name}.d"
    work.mkdir(exist_ok=True)
    disk = vmdk_of(image, work / "disk0.vmdk")
    capacity = -(-image.stat().st_size // MIB) * MIB
    text = ovf_text([OvaDisk(disk.name, b"", capacity)], hardware)
    return _tar(directory / name, text, "vm.ovf", [disk])


def _tar(path: Path, ovf: str, ovf_name: str, files: list[Path]) -> Path:
    """The OVA at `path`: the OVF first (as the OVF standard wants), then `files`."""
    descriptor = path.with_suffix(".ovf-text")
    descriptor.write_text(ovf)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        tar.add(descriptor, arcname=ovf_name)
        for file in files:
            tar.add(file, arcname=file.name)
    descriptor.unlink()
    return path
