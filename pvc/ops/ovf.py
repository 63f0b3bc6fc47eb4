"""The OVF descriptor of an OVA: the virtual hardware and the disks it describes.

An OVF (DMTF DSP0243, 1.x and 2.x envelopes) names its files in References/File, its disks in
DiskSection/Disk (capacity in capacityAllocationUnits, e.g. "byte * 2^30", and the File the
disk's image is in), and in VirtualSystem/VirtualHardwareSection the items a VM is made of,
by CIM ResourceType: 3 CPUs, 4 memory (AllocationUnits), 10 NICs, 17 disks (HostResource
"ovf:/disk/<Disk id>"). Elements and attributes are matched by local name, so both envelope
versions (and OVF 2's StorageItem/EthernetPortItem) read the same.

An uploaded OVF is hostile: it is parsed by expat with a handler that refuses any DOCTYPE
(so no entity, internal or external, is ever declared or expanded: billion laughs, external
files), and only up to OVF_MAX bytes. What is missing or inconsistent is an InvalidInput
naming it; nothing is guessed.
"""

import re
import xml.parsers.expat
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, TreeBuilder

from pvc.errors import InvalidInput
from pvc.ops.provisioner_template_checks import MEMORY_MAX, VCPUS_MAX
from pvc.ops.sizes import SIZE_MAX
from pvc.ops.user_input import quoted

OVF_MAX = 1 << 20  # bytes of an OVF descriptor
DISKS_MAX = 26  # vda .. vdz
CPU, MEMORY, NIC, DISK = "3", "4", "10", "17"
FORMATS = {"vmdk": "vmdk", "qcow": "qcow2"}  # a Disk's ovf:format URI mentions one of these
EXPONENT_MAX = 60  # 2^60, 10^18: past any disk or memory size
_UNITS = re.compile(r"^\s*(?:byte|bytes)?\s*(?:\*\s*(\d+)\s*\^\s*(\d+))?\s*$", re.IGNORECASE)
_OLD_UNITS = {"bytes": 1, "kilobytes": 1 << 10, "megabytes": 1 << 20, "gigabytes": 1 << 30,
              "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}  # fmt: skip
_NUMBER = re.compile(r"^\s*\d{1,20}\s*$")


@dataclass(frozen=True)
class Disk:
    disk_id: str  # vda, vdb, ... in the order of the hardware section
    file: str  # the archive member holding its image
    capacity: int  # bytes
    image_format: str  # vmdk or qcow2


@dataclass(frozen=True)
class Ovf:
    name: str  # the VirtualSystem's id or Name
    vcpus: int
    memory: int  # MiB
    nics: int
    disks: list[Disk]
    files: dict[str, int | None]  # href -> the size the OVF gives it (or None)

    def summary(self) -> dict[str, Any]:
        """What the ova record keeps of the OVF."""
        disks = [{"disk_id": d.disk_id, "file": d.file, "capacity": d.capacity,
                  "format": d.image_format} for d in self.disks]  # fmt: skip
        return {"system": self.name, "vcpus": self.vcpus, "memory": self.memory,
                "nics": self.nics, "disks": disks}  # fmt: skip


def parse(text: bytes) -> Ovf:
    """The OVF in `text`; InvalidInput naming what is wrong with it."""
    root = _tree(text)
    if _local(root.tag) != "Envelope":
        raise InvalidInput(f"the OVF's root element is {quoted(_local(root.tag))}, not Envelope")
    files = _files(root)
    disks = _disks(root, files)
    system = _first(root, "VirtualSystem")
    if system is None:
        raise InvalidInput("the OVF has no VirtualSystem")
    hardware = _first(system, "VirtualHardwareSection")
    if hardware is None:
        raise InvalidInput("the OVF's VirtualSystem has no VirtualHardwareSection")
    items = [i for i in hardware if _local(i.tag) in ("Item", "StorageItem", "EthernetPortItem")]
    by_type: dict[str, list[Element]] = {}
    for item in items:
        by_type.setdefault(_text(item, "ResourceType"), []).append(item)
    vcpus = _count(by_type, CPU, "CPU")
    if vcpus > VCPUS_MAX:
        raise InvalidInput(f"the OVF's CPU count is {vcpus}: at most {VCPUS_MAX}")
    memory = _memory(by_type)
    used = [_disk_reference(item) for item in by_type.get(DISK, [])]
    if len(used) > DISKS_MAX:
        raise InvalidInput(f"the OVF has {len(used)} disks: at most {DISKS_MAX} are taken")
    for reference in used:
        if reference not in disks:
            raise InvalidInput(f"the OVF's hardware names disk {quoted(reference)}, which its "
                               "DiskSection lacks")  # fmt: skip
    if len(set(used)) != len(used):
        raise InvalidInput("the OVF's hardware names one disk twice")
    ordered = [
        Disk(f"vd{chr(ord('a') + index)}", *disks[reference])
        for index, reference in enumerate(used)
    ]
    name = _attribute(system, "id") or _text(system, "Name") or "system"
    sizes = dict(files.values())
    return Ovf(name, vcpus, memory, len(by_type.get(NIC, [])), ordered, sizes)


# --- parsing ---------------------------------------------------------------------------------


def _tree(text: bytes) -> Element:
    """The document's elements, tags as "{namespace}local"; any DOCTYPE refused."""
    if len(text) > OVF_MAX:
        raise InvalidInput(f"the OVF is {len(text)} bytes: at most {OVF_MAX} are taken")
    builder = TreeBuilder()
    parser = xml.parsers.expat.ParserCreate(namespace_separator="}")

    def refuse(*_: Any) -> None:
        raise InvalidInput("the OVF has a DOCTYPE (entities are refused)")

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = lambda tag, attributes: builder.start(
        _clark(tag), {_clark(k): v for k, v in attributes.items()}
    )
    parser.EndElementHandler = lambda tag: builder.end(_clark(tag))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(text, True)
    except xml.parsers.expat.ExpatError as exc:
        raise InvalidInput(f"the OVF is not well-formed XML: {exc}") from None
    return builder.close()


def _clark(name: str) -> str:
    return "{" + name if "}" in name else name


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _first(parent: Element, local: str) -> Element | None:
    return next((child for child in parent if _local(child.tag) == local), None)


def _text(parent: Element, local: str) -> str:
    child = _first(parent, local)
    return (child.text or "").strip() if child is not None else ""


def _attribute(element: Element, local: str) -> str | None:
    return next((v for k, v in element.attrib.items() if _local(k) == local), None)


def _integer(text: str | None, what: str) -> int:
    if text is None or not _NUMBER.match(text):
        raise InvalidInput(f"the OVF's {what} is {quoted(text)}, not a whole number")
    return int(text)


def _factor(units: str | None, what: str) -> int:
    """Bytes per unit of "byte * 2^30" (DSP0004 programmatic units) or "MegaBytes"."""
    if units is None or not units.strip():
        return 1
    if (old := _OLD_UNITS.get(units.strip().lower())) is not None:
        return old
    match = _UNITS.match(units)
    if match is None:
        raise InvalidInput(f"the OVF's {what} has units {quoted(units)}, which pvc does not read")
    base, exponent = match.groups()
    if not base:
        return 1
    if int(base) not in (2, 10) or int(exponent) > EXPONENT_MAX:  # 10^3000000: hours of CPU
        raise InvalidInput(f"the OVF's {what} has units {quoted(units)}, which pvc does not read")
    return int(base) ** int(exponent)


# --- sections --------------------------------------------------------------------------------


def _files(root: Element) -> dict[str, tuple[str, int | None]]:
    """References/File: id -> (href, size or None); an href must be a file of the OVA."""
    references = _first(root, "References")
    found: dict[str, tuple[str, int | None]] = {}
    for file in references if references is not None else []:
        if _local(file.tag) != "File":
            continue
        file_id, href = _attribute(file, "id"), _attribute(file, "href")
        if not file_id or not href:
            raise InvalidInput("the OVF has a File without id or href")
        if "/" in href or "\\" in href or href.startswith(".") or ":" in href:
            raise InvalidInput(f"the OVF's file {quoted(href)} is not a file of the OVA")
        if _attribute(file, "compression") or _attribute(file, "chunkSize"):
            raise InvalidInput(f"the OVF's file {quoted(href)} is compressed or chunked: "
                               "pvc takes whole, uncompressed files")  # fmt: skip
        size = _attribute(file, "size")
        found[file_id] = (href, None if size is None else _integer(size, f"size of {href}"))
    return found


def _disks(
    root: Element, files: dict[str, tuple[str, int | None]]
) -> dict[str, tuple[str, int, str]]:
    """DiskSection/Disk: "/disk/<id>" -> (file href, capacity in bytes, image format)."""
    section = _first(root, "DiskSection")
    disks: dict[str, tuple[str, int, str]] = {}
    for disk in section if section is not None else []:
        if _local(disk.tag) != "Disk":
            continue
        disk_id, file_ref = _attribute(disk, "diskId"), _attribute(disk, "fileRef")
        if not disk_id:
            raise InvalidInput("the OVF has a Disk without diskId")
        what = f"disk {quoted(disk_id)}"
        if not file_ref:
            raise InvalidInput(f"the OVF's {what} has no fileRef (empty disks are not taken)")
        if file_ref not in files:
            raise InvalidInput(f"the OVF's {what} names file {quoted(file_ref)}, which its "
                               "References lack")  # fmt: skip
        capacity = _integer(_attribute(disk, "capacity"), f"capacity of {what}")
        capacity *= _factor(_attribute(disk, "capacityAllocationUnits"), f"capacity of {what}")
        if capacity <= 0:
            raise InvalidInput(f"the OVF's {what} has no capacity")
        if capacity > SIZE_MAX:
            raise InvalidInput(f"the OVF's {what} is larger than Ceph can hold")
        disk_format = _attribute(disk, "format") or ""
        image_format = next((f for word, f in FORMATS.items() if word in disk_format.lower()), None)
        if image_format is None:
            raise InvalidInput(f"the OVF's {what} is of format {quoted(disk_format)}: "
                               "only VMDK and qcow2 disks are taken")  # fmt: skip
        disks[f"/disk/{disk_id}"] = (files[file_ref][0], capacity, image_format)
    return disks


def _count(by_type: dict[str, list[Element]], resource: str, what: str) -> int:
    items = by_type.get(resource, [])
    if not items:
        raise InvalidInput(f"the OVF's hardware has no {what} item")
    count = _integer(_text(items[0], "VirtualQuantity"), f"{what} count")
    if count < 1:
        raise InvalidInput(f"the OVF's {what} count is {count}")
    return count


def _memory(by_type: dict[str, list[Element]]) -> int:
    """The memory item's quantity in MiB (AllocationUnits; MiB if none)."""
    quantity = _count(by_type, MEMORY, "memory")
    units = _text(by_type[MEMORY][0], "AllocationUnits") or "byte * 2^20"
    memory = quantity * _factor(units, "memory") // (1 << 20)
    if memory < 1:
        raise InvalidInput(f"the OVF's memory is less than 1 MiB ({quantity} x {units})")
    if memory > MEMORY_MAX:
        raise InvalidInput(f"the OVF's memory is more than {MEMORY_MAX} MiB")
    return memory


def _disk_reference(item: Element) -> str:
    """The "/disk/<id>" a disk item's HostResource names ("ovf:/disk/<id>")."""
    host = _text(item, "HostResource")
    reference = host.removeprefix("ovf:")
    if not reference.startswith("/disk/"):
        raise InvalidInput(f"the OVF's disk item names {quoted(host)}, not ovf:/disk/<id>")
    return reference
