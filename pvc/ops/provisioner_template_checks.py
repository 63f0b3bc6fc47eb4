"""What a template may hold: the checks of every field of the system, network and storage
templates (pvc.ops.provisioner_templates), and the MAC addresses a network template gives.

Each check returns the value as stored, or raises InvalidInput naming the field, the value and
the rule. The rules, and why:
- vCPUs 1 to VCPUS_MAX, memory MEMORY_MIN to MEMORY_MAX MiB: a guest needs a vCPU and a few
  MiB to boot at all; the upper bounds are past any host pvc runs on and catch unit mistakes
  (bytes or KiB given as MiB).
- vnc_bind an IP address (VNC_BIND_PATTERN, stated in the OpenAPI document too): libvirt's
  VNC listen address; a host name would resolve differently on each node.
- A disk is vd[a-z] (the virtio target it becomes, so at most 26), once per template; it has a
  size (a size with a unit) or a source volume to copy, or both (the copy grown to the size:
  a base image's root disk made larger); a filesystem from
  FILESYSTEMS (whether its mkfs is installed is checked when a VM is created, on the node that
  builds it); filesystem arguments only with a filesystem; a mountpoint (where the install
  script finds it) only where there is a filesystem to mount (a new one, or the clone's), an
  absolute path without '.' or '..' parts (MOUNTPOINT_PATTERN), once per template.
- A MAC template uses only the placeholders {prefix} (52:54:00, QEMU's own range), {vmid} and
  {netid} (two hex digits each), and gives a unicast MAC address for every value of them.
Pools, volumes and networks are not looked up: they may come and go between a template's
writing and its use, and a create checks them all before it makes anything.
"""

import ipaddress
import re
import string
from typing import Any

from pvc.errors import InvalidInput
from pvc.ops import network_dhcp, placement, user_input
from pvc.ops import vm as vm_ops
from pvc.ops.network_checks import require_vni
from pvc.ops.sizes import parse_size

VCPUS_MAX = 256
MEMORY_MIN = 16  # MiB
MEMORY_MAX = 16 * 1024 * 1024  # MiB: 16 TiB
NETWORKS_MAX = 32  # NICs of one template (PCI slots of one bus)
DISK_ID_PATTERN = "^vd[a-z]$"
FILESYSTEMS = ("ext2", "ext3", "ext4", "xfs", "vfat", "btrfs")
FILESYSTEM_ARGS_MAX = 256  # characters of one disk's filesystem arguments, spaces included
MOUNTPOINT_MAX = 255
MAC_TEMPLATE_MAX = 64
MAC_PREFIX = "52:54:00"
PLACEHOLDERS = ("prefix", "vmid", "netid")
SELECTOR_DEFAULT = ("", vm_ops.DEFAULT_SELECTOR)  # the cluster's vm.default_selector
# Every value of {vmid} and {netid} a template is tried with: the lowest, an odd one (its low
# bit in the first octet makes a multicast address), the highest.
_SAMPLES = (0, 1, 255)


def _ip_address() -> str:
    """IPv4 (no leading zeros) or IPv6 (full, or with '::' for one or more zero groups), as
    Python's ipaddress reads them; each alternative matches a text one way only."""
    octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    ipv4 = rf"{octet}(?:\.{octet}){{3}}"
    group = "[0-9A-Fa-f]{1,4}"

    def groups(count: int) -> str:  # exactly `count` groups, ':' between
        return "" if count == 0 else f"{group}(?::{group}){{{count - 1}}}"

    def up_to(count: int) -> str:  # at most `count` groups
        return "" if count == 0 else f"(?:{group}(?::{group}){{0,{count - 1}}})?"

    ipv6 = [f"{group}(?::{group}){{7}}"]
    ipv6 += [f"{groups(before)}::{up_to(7 - before)}" for before in range(8)]
    return f"{ipv4}|{'|'.join(ipv6)}"


# An IP address, or empty (libvirt's default).
VNC_BIND_PATTERN = f"^(?:{_ip_address()})?$"
VNC_BIND_MAX = 39  # the longest IPv6 address
_NOT_DOT = "[A-Za-z0-9_+@-]"
_ANY = "[A-Za-z0-9._+@-]"
_PART = rf"(?:{_NOT_DOT}{_ANY}*|\.\.?{_NOT_DOT}{_ANY}*|\.\.\.{_ANY}*)"
MOUNTPOINT_PATTERN = f"^/(?:{_PART}(?:/{_PART})*)?$"
MOUNTPOINT_RULE = (
    "an absolute path of letters, digits and '._+@-', without '.' or '..' parts, empty parts or "
    f"a trailing '/', at most {MOUNTPOINT_MAX} characters"
)
# One argument for mkfs (options, labels, feature lists such as ^has_journal,metadata_csum),
# and the API's text form of them: separated by spaces. No '/': mkfs runs as root on the node,
# and options that take a path (ext4's -d DIR copies a directory into the filesystem, -J
# device= a journal device, btrfs's extra devices, xfs's -p protofile) must not reach the
# node's files or disks; it runs in the work folder, so a relative name stays in there.
FILESYSTEM_ARG = "[A-Za-z0-9_=,.:^+@%-]+"
FILESYSTEM_ARGS_PATTERN = f"^ *(?:{FILESYSTEM_ARG}(?: +{FILESYSTEM_ARG})* *)?$"
FILESYSTEM_ARGS_RULE = "letters, digits and '_=,.:^+@%-' (no '/'), separated by spaces"


def _whole(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"invalid {what} {user_input.quoted(value)}: from {low} to {high}")
    return value


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"invalid {what} {user_input.quoted(value)}: true or false")
    return value


def require_vnc_bind(value: Any) -> str | None:
    """The address VNC listens on (None or '' for libvirt's default, localhost)."""
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(VNC_BIND_PATTERN, value):
        raise InvalidInput(f"invalid VNC bind address {user_input.quoted(value)}: an IP address")
    return str(ipaddress.ip_address(value)) if value else None


def require_selector(value: Any) -> str | None:
    """A node selector; None (also for '' and 'default') leaves the choice to the cluster's
    vm.default_selector when the VM is created."""
    if value is None or value in SELECTOR_DEFAULT:
        return None
    if value not in placement.SELECTORS:
        raise InvalidInput(
            f"unknown node selector {user_input.quoted(value)} (use "
            f"{', '.join(placement.SELECTORS)}, or {vm_ops.DEFAULT_SELECTOR})"
        )
    return value


def require_migration_method(value: Any) -> str:
    if value not in vm_ops.MIGRATION_METHODS:
        raise InvalidInput(
            f"invalid migration method {user_input.quoted(value)}: "
            f"one of {', '.join(vm_ops.MIGRATION_METHODS)}"
        )
    return value


# A system template's fields and their checks (the value as stored, from the value given).
SYSTEM_FIELDS = {
    "vcpus": lambda value: _whole(value, "vCPU count", 1, VCPUS_MAX),
    "memory": lambda value: _whole(value, "memory (MiB)", MEMORY_MIN, MEMORY_MAX),
    "serial": lambda value: _flag(value, "serial"),
    "vnc": lambda value: _flag(value, "vnc"),
    "vnc_bind": require_vnc_bind,
    "node_limit": lambda value: user_input.require_node_limit(list(value or [])),
    "node_selector": require_selector,
    "node_autostart": lambda value: _flag(value, "node_autostart"),
    "migration_method": require_migration_method,
}


def system_record(given: dict[str, Any]) -> dict[str, Any]:
    """A system template's fields, each checked; every field must be in `given`."""
    return {field: check(given[field]) for field, check in SYSTEM_FIELDS.items()}


# --- network templates -------------------------------------------------------------------


def vm_number(vm_name: str) -> int:
    """A VM's {vmid}: the number that ends its name ('web12' -> 12), 0 if none does."""
    digits = re.search(r"[0-9]+$", vm_name)
    return int(digits.group()) if digits else 0


def mac_from_template(template: str, vmid: int, netid: int) -> str:
    """The MAC address of NIC number `netid` (0 for the first) of the VM whose name ends in
    the number `vmid` (vm_number), by a checked MAC template: {prefix} is 52:54:00, {vmid}
    and {netid} two hex digits (of the number modulo 256). InvalidInput if the template gives
    no unicast address for these numbers (require_mac_template prevents that)."""
    text = template.format(prefix=MAC_PREFIX, vmid=f"{vmid % 256:02x}", netid=f"{netid % 256:02x}")
    try:
        return network_dhcp.require_mac(text)
    except InvalidInput as refused:
        raise InvalidInput(
            f"MAC template {user_input.quoted(template)} gives {user_input.quoted(text)} for "
            f"vmid {vmid} and netid {netid}: {refused.message}"
        ) from None


def require_mac_template(template: Any) -> str | None:
    """A MAC template (None or '' for none: the create makes random addresses)."""
    if template in (None, ""):
        return None
    if not isinstance(template, str) or len(template) > MAC_TEMPLATE_MAX:
        raise InvalidInput(
            f"invalid MAC template {user_input.quoted(template)}: at most {MAC_TEMPLATE_MAX} "
            "characters"
        )
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:  # an unmatched brace
        raise InvalidInput(f"invalid MAC template {user_input.quoted(template)}: {error}") from None
    for _, field, spec, conversion in parts:
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            shown = (
                "{"
                + field
                + (f"!{conversion}" if conversion else "")
                + f"{':' * bool(spec)}{spec}}}"
            )
            raise InvalidInput(
                f"invalid MAC template {user_input.quoted(template)}: unknown placeholder "
                f"{user_input.quoted(shown)} (use {{prefix}}, {{vmid}} or {{netid}}, as they are)"
            )
    for vmid in _SAMPLES:
        for netid in _SAMPLES:
            mac_from_template(template, vmid, netid)
    return template


def gives_one_mac(template: str | None) -> bool:
    """True if the template gives every NIC of a VM the same address (no {netid})."""
    return template is not None and "{netid}" not in template


def require_network_count(count: int) -> None:
    if count > NETWORKS_MAX:
        raise InvalidInput(f"a network template has at most {NETWORKS_MAX} networks")


def require_vnis(vnis: list[Any]) -> list[int]:
    """The networks of a new template: each a VNI, each once, at most NETWORKS_MAX."""
    numbers = [require_vni(vni) for vni in vnis]
    twice = sorted({vni for vni in numbers if numbers.count(vni) > 1})
    if twice:
        raise InvalidInput(f"network {twice[0]} is given twice: a VM has one NIC per network")
    require_network_count(len(numbers))
    return numbers


# --- storage templates -------------------------------------------------------------------


def require_disk_id(disk_id: Any) -> str:
    if not isinstance(disk_id, str) or not re.fullmatch(DISK_ID_PATTERN, disk_id):
        raise InvalidInput(
            f"invalid disk id {user_input.quoted(disk_id)}: vd and a letter (vda, vdb, ...: the "
            "virtio target)"
        )
    return disk_id


def require_mountpoint(mountpoint: Any) -> str:
    if (
        not isinstance(mountpoint, str)
        or len(mountpoint) > MOUNTPOINT_MAX
        or not re.fullmatch(MOUNTPOINT_PATTERN, mountpoint)
    ):
        raise InvalidInput(f"invalid mountpoint {user_input.quoted(mountpoint)}: {MOUNTPOINT_RULE}")
    return mountpoint


def require_filesystem_args(args: list[Any]) -> list[str]:
    """Arguments for mkfs (the API takes them as one text, separated by spaces)."""
    valid = all(isinstance(arg, str) and re.fullmatch(FILESYSTEM_ARG, arg) for arg in args)
    if not valid or len(" ".join(map(str, args))) > FILESYSTEM_ARGS_MAX:
        raise InvalidInput(
            f"invalid filesystem arguments {user_input.quoted(args)}: {FILESYSTEM_ARGS_RULE}, "
            f"at most {FILESYSTEM_ARGS_MAX} characters in all"
        )
    return list(args)


def disk_record(
    disk_id: Any,
    pool: Any,
    size: Any = None,
    source_volume: Any = None,
    filesystem: Any = None,
    filesystem_args: list[Any] | None = None,
    mountpoint: Any = None,
) -> dict[str, Any]:
    """One disk of a storage template, every field checked (see the module's docstring)."""
    disk_id = require_disk_id(disk_id)
    user_input.require_name(pool, "pool name")
    if size is None and source_volume is None:
        raise InvalidInput(
            f"disk {disk_id}: give a size (a new volume) or a source volume (a clone)"
        )
    if source_volume is not None:
        user_input.require_name(source_volume, "source volume name")
        if filesystem is not None:
            raise InvalidInput(
                f"disk {disk_id}: a copy of a volume keeps its own filesystem (a new one would "
                "wipe it): give a filesystem or a source volume, not both"
            )
    if filesystem is not None and filesystem not in FILESYSTEMS:
        raise InvalidInput(
            f"unknown filesystem {user_input.quoted(filesystem)} for disk {disk_id} (use "
            f"{', '.join(FILESYSTEMS)})"
        )
    args = require_filesystem_args(filesystem_args or [])
    if args and filesystem is None:
        raise InvalidInput(f"disk {disk_id}: filesystem arguments need a filesystem")
    if mountpoint is not None:
        mountpoint = require_mountpoint(mountpoint)
        if filesystem is None and source_volume is None:
            raise InvalidInput(
                f"disk {disk_id}: a mountpoint needs a filesystem (a new one, or a source volume's)"
            )
    return {
        "disk_id": disk_id,
        "pool": pool,
        "size": None if size is None else parse_size(size),
        "source_volume": source_volume,
        "filesystem": filesystem,
        "filesystem_args": args,
        "mountpoint": mountpoint,
    }
