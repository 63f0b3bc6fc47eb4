"""Reading and validating libvirt domain XML, the source of truth for a VM's definition."""

import uuid as uuid_module
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from pvc.errors import InvalidInput
from pvc.zk import schema

_UNITS = {"b": 1 / 2**20, "bytes": 1 / 2**20, "k": 1 / 1024, "kib": 1 / 1024, "kb": 1000 / 2**20,
          "m": 1, "mib": 1, "mb": 10**6 / 2**20, "g": 1024, "gib": 1024, "gb": 10**9 / 2**20,
          "t": 2**20, "tib": 2**20, "tb": 10**12 / 2**20}  # fmt: skip


@dataclass(frozen=True)
class DomainSpec:
    name: str
    uuid: str
    memory: int  # MiB
    vcpus: int


def _root(xml: str) -> ET.Element:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InvalidInput(f"the XML does not parse: {exc}") from None
    if root.tag != "domain":
        raise InvalidInput(f"the XML is not a libvirt domain: its root is <{root.tag}>")
    return root


def _text(root: ET.Element, tag: str) -> str:
    element = root.find(tag)
    if element is None or not (element.text or "").strip():
        raise InvalidInput(f"the domain XML has no <{tag}>")
    return element.text.strip()


def parse(xml: str) -> DomainSpec:
    """Checks what pvc needs (name, uuid, memory, vcpu) and returns it."""
    root = _root(xml)
    name = _text(root, "name")
    if not schema.valid_name(name):
        raise InvalidInput(f"invalid VM name {name!r}: {schema.NAME_RULE}")
    try:
        uuid = str(uuid_module.UUID(_text(root, "uuid")))
    except ValueError:
        raise InvalidInput("the domain XML's <uuid> is not a UUID") from None
    memory_element = root.find("memory")
    unit = (memory_element.get("unit", "KiB") if memory_element is not None else "KiB").lower()
    if unit not in _UNITS:
        raise InvalidInput(f"unknown memory unit {unit!r} in <memory>")
    try:
        memory = int(int(_text(root, "memory")) * _UNITS[unit])
        vcpus = int(_text(root, "vcpu"))
    except ValueError:
        raise InvalidInput("<memory> and <vcpu> must be whole numbers") from None
    if memory < 1 or vcpus < 1:
        raise InvalidInput("the domain needs at least 1 MiB of memory and 1 vCPU")
    return DomainSpec(name, uuid, memory, vcpus)


def renamed(xml: str, name: str) -> str:
    """The same XML with another <name>."""
    root = _root(xml)
    root.find("name").text = name
    return ET.tostring(root, encoding="unicode")
