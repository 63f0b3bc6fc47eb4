"""Reading and validating libvirt domain XML, the source of truth for a VM's definition.

`parse` is pure: it refuses, with one InvalidInput and never another exception, what pvc
cannot store or libvirt would refuse in the parts pvc reads: text over limits.XML_MAX bytes
(checked before parsing) or nested deeper than limits.XML_DEPTH_MAX (counted while parsing,
without recursion), an XML declaration whose encoding is not the text's (pvc stores UTF-8),
a name off the name rule, a UUID off libvirt's two forms, memory or vCPUs that are not whole
numbers in ASCII digits (Python's int() takes other scripts' digits; libvirt does not).
`checked` adds libvirt's own judgement of the whole domain (pvc.drivers.libvirt_schema).
"""

import codecs
import re
import uuid as uuid_module
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from pvc import limits
from pvc.drivers import libvirt_schema
from pvc.errors import InvalidInput
from pvc.ops import user_input

# Bytes per unit of <memory unit=...> (libvirt's units; case does not matter).
_UNITS = {"b": 1, "bytes": 1, "k": 2**10, "kib": 2**10, "kb": 10**3, "m": 2**20, "mib": 2**20,
          "mb": 10**6, "g": 2**30, "gib": 2**30, "gb": 10**9, "t": 2**40, "tib": 2**40,
          "tb": 10**12, "p": 2**50, "pib": 2**50, "pb": 10**15, "e": 2**60, "eib": 2**60,
          "eb": 10**18}  # fmt: skip
_UNSIGNED_LONG_MAX = 2**64 - 1  # libvirt's bound on a <memory> value
_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only: re's [0-9] is not \d
# libvirt's domain.rng: 32 hex digits, or 8-4-4-4-12 with dashes (no braces, no urn:).
_UUID = re.compile(r"[0-9A-Fa-f]{32}|[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}")
_DECLARED_ENCODING = re.compile(r"""<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']""")


@dataclass(frozen=True)
class DomainSpec:
    name: str
    uuid: str
    memory: int  # MiB
    vcpus: int
    volumes: tuple[str, ...] = ()  # its RBD disks' "pool/volume", in order


def _rbd_volumes(root: ET.Element) -> tuple[str, ...]:
    """The "pool/volume" of every <disk type='network'> whose source is RBD."""
    found = []
    for disk in root.iterfind("devices/disk"):
        source = disk.find("source")
        if disk.get("type") == "network" and source is not None and source.get("protocol") == "rbd":
            found.append(source.get("name") or "")
    return tuple(found)


@dataclass(frozen=True)
class Nic:
    """A network interface of a domain: its MAC (lowercase; None if libvirt will pick one),
    the bridge it is on (None for other kinds), and its device name on the host, if set."""

    mac: str | None
    bridge: str | None
    target: str | None = None


def interfaces(xml: object) -> list[Nic]:
    """The domain's <interface> elements, in order (XML checked as `parse` does)."""
    found = []
    for interface in _root(xml).iterfind("devices/interface"):
        mac, source, target = (interface.find(tag) for tag in ("mac", "source", "target"))
        found.append(
            Nic(
                None if mac is None or not mac.get("address") else mac.get("address").lower(),
                source.get("bridge") if source is not None else None,
                target.get("dev") if target is not None else None,
            )
        )
    return found


def _check_text(xml: object) -> str:
    """`xml` if it is text pvc can store as UTF-8, within limits.XML_MAX bytes, whose
    declaration (if any) does not claim another encoding."""
    if not isinstance(xml, str):
        raise InvalidInput("the domain XML must be text")
    if len(xml) > limits.XML_MAX:  # a character is at least one byte: no need to encode it
        raise InvalidInput(f"the domain XML is over {limits.XML_MAX} bytes")
    try:
        size = len(xml.encode())
    except UnicodeEncodeError:
        raise InvalidInput("the domain XML is not valid Unicode text (a lone surrogate)") from None
    if size > limits.XML_MAX:
        raise InvalidInput(f"the domain XML is over {limits.XML_MAX} bytes ({size} in UTF-8)")
    declared = _DECLARED_ENCODING.match(xml.lstrip("\ufeff"))
    if declared and not _is_encoding_of(declared.group(1), xml):
        raise InvalidInput(
            f"the XML declaration says encoding={user_input.quoted(declared.group(1))}, but "
            "pvc takes and stores the XML as UTF-8: declare UTF-8, or no encoding"
        )
    return xml


def _is_encoding_of(declared: str, xml: str) -> bool:
    try:
        encoding = codecs.lookup(declared).name
    except LookupError:
        return False
    return encoding == "utf-8" or (encoding == "ascii" and xml.isascii())


def _root(xml: object) -> ET.Element:
    """The root element of `xml`, a <domain>, parsed without recursion and with its depth
    counted as it goes."""
    parser = ET.XMLPullParser(events=("start", "end"))
    depth, root = 0, None
    try:
        parser.feed(_check_text(xml))
        parser.close()  # a truncated document raises here
        for event, element in parser.read_events():
            depth += 1 if event == "start" else -1
            if depth > limits.XML_DEPTH_MAX:
                raise InvalidInput(
                    f"the domain XML is nested deeper than {limits.XML_DEPTH_MAX} elements"
                )
            root = root if root is not None else element
    except ET.ParseError as exc:
        raise InvalidInput(f"the XML does not parse: {exc}") from None
    if root.tag != "domain":
        raise InvalidInput(
            f"the XML is not a libvirt domain: its root is {user_input.quoted(root.tag)}"
        )
    return root


def _text(root: ET.Element, tag: str) -> str:
    element = root.find(tag)
    if element is None or not (element.text or "").strip():
        raise InvalidInput(f"the domain XML has no <{tag}>")
    return element.text.strip()


def _whole_number(root: ET.Element, tag: str) -> int:
    text = _text(root, tag)
    if not _DIGITS.fullmatch(text):
        raise InvalidInput(
            f"<{tag}> must be a whole number in ASCII digits 0-9, not {user_input.quoted(text)}"
        )
    return int(text)


def _memory_mib(root: ET.Element) -> int:
    value = _whole_number(root, "memory")
    unit = root.find("memory").get("unit", "KiB")
    if unit.lower() not in _UNITS:
        raise InvalidInput(f"unknown memory unit {user_input.quoted(unit)} in <memory>")
    size = value * _UNITS[unit.lower()]
    if size > _UNSIGNED_LONG_MAX:
        raise InvalidInput("<memory> is larger than libvirt can hold (2^64 - 1 bytes)")
    return size // 2**20


def parse(xml: object) -> DomainSpec:
    """Checks the XML (see the module docstring) and returns what pvc needs from it."""
    root = _root(xml)
    name = user_input.require_name(_text(root, "name"), "VM name")
    uuid_text = _text(root, "uuid")
    if not _UUID.fullmatch(uuid_text):
        raise InvalidInput(
            f"the domain XML's <uuid> is not a UUID: {user_input.quoted(uuid_text)} "
            "(libvirt takes 32 hex digits, or 8-4-4-4-12 with dashes, without braces)"
        )
    memory = _memory_mib(root)
    vcpus = _whole_number(root, "vcpu")
    if memory < 1 or vcpus < 1:
        raise InvalidInput("the domain needs at least 1 MiB of memory and 1 vCPU")
    return DomainSpec(name, str(uuid_module.UUID(uuid_text)), memory, vcpus, _rbd_volumes(root))


def checked(xml: object) -> DomainSpec:
    """`parse`, then libvirt's own validation of the whole domain (where libvirt is at hand)."""
    spec = parse(xml)
    refusal = libvirt_schema.refusal(xml)
    if refusal is not None:
        raise InvalidInput(limits.one_line(f"libvirt refuses the domain XML: {refusal}"))
    return spec


def renamed(xml: str, name: str) -> str:
    """The same XML with another <name> (the stored XML is parsed with the same checks: one
    stored before they existed is refused, not a cause of a server error)."""
    root = _root(xml)
    root.find("name").text = name
    return ET.tostring(root, encoding="unicode")
