"""Usage:
  pvc provisioner template list [<limit>] [--format FORMAT]
  pvc provisioner template system add <name> --vcpus N --memory MIB [--serial] [--vnc]
      [--vnc-bind IP] [--node-limit NODES] [--node-selector S] [--node-autostart]
      [--migration-method M]
  pvc provisioner template system modify <name> [--vcpus N] [--memory MIB]
      [--serial | --no-serial] [--vnc | --no-vnc] [--vnc-bind IP] [--node-limit NODES]
      [--node-selector S] [--node-autostart | --no-node-autostart] [--migration-method M]
  pvc provisioner template system remove <name> [--yes]
  pvc provisioner template system info <name> [--format FORMAT]
  pvc provisioner template system list [<limit>] [--format FORMAT]
  pvc provisioner template network add <name> [--mac-template T] [--vni VNI]...
  pvc provisioner template network vni add <name> <vni>
  pvc provisioner template network vni remove <name> <vni>
  pvc provisioner template network remove <name> [--yes]
  pvc provisioner template network info <name> [--format FORMAT]
  pvc provisioner template network list [<limit>] [--format FORMAT]
  pvc provisioner template storage add <name>
  pvc provisioner template storage disk add <name> <disk_id> --pool P
      [--size S] [--source-volume V] [--filesystem FS] [--fsarg ARG]... [--mountpoint M]
  pvc provisioner template storage disk remove <name> <disk_id>
  pvc provisioner template storage remove <name> [--yes]
  pvc provisioner template storage info <name> [--format FORMAT]
  pvc provisioner template storage list [<limit>] [--format FORMAT]
  pvc provisioner template -h | --help

Commands:
  list         Every template, by kind; <limit>: only those whose name contains it.
  system       A VM's vCPUs, memory, consoles and placement: add, modify (the settings
               given), remove, info, list.
  network      A VM's NICs: the networks by VNI in NIC order (vni add appends one), and a
               MAC template (without one, a create makes random addresses).
  storage      A VM's disks (disk add, disk remove): each a new volume of a size or a clone
               of a volume, optionally with a filesystem an install script finds mounted.
  remove       Remove a template (asks first unless --yes); refused while a profile uses it.

Options:
  --vcpus N                   vCPUs, 1 to 256
  --memory MIB                memory in MiB, at least 16
  --serial                    a serial console (the VM's console log)
  --no-serial                 modify: no serial console
  --vnc                       a VNC console
  --no-vnc                    modify: no VNC console
  --vnc-bind IP               the address VNC listens on (default localhost; '' clears it)
  --node-limit NODES          comma-separated nodes the VM may run on ('' clears it)
  --node-selector S           mem, memprov, load, vcpus or vms; default: the cluster's
  --node-autostart            start the VM when its node becomes ready
  --no-node-autostart         modify: do not
  --migration-method M        live, shutdown or none (add: live if not given)
  --mac-template T            MAC addresses, e.g. '{prefix}:ff:{vmid}:{netid}': {prefix} is
                              52:54:00, {vmid} the number ending the VM's name and {netid}
                              the NIC's index (two hex digits each)
  --vni VNI                   a network, by VNI (repeat for more NICs, in order)
  --pool P                    the pool of the disk's volume
  --size S                    a new volume of size S: a number and a binary unit, e.g. 10G
                              (with --source-volume: the copy is grown to S)
  --source-volume V           a copy of volume V of the pool
  --filesystem FS             make a filesystem: ext2, ext3, ext4, xfs, vfat or btrfs
  --fsarg ARG                 an argument for mkfs (repeat for more)
  --mountpoint M              where the install script finds the disk mounted, e.g. /
  -y, --yes                   do not ask for confirmation
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from pvc.cli import client
from pvc.cli.cluster import confirm_or_stop
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.parse import parse
from pvc.cli.storage_pool import whole_number
from pvc.errors import UsageError
from pvc.ops.sizes import format_size

if TYPE_CHECKING:
    from pvc.__main__ import Globals

BASE = "/provisioner/template"
KINDS = ("system", "network", "storage")
# flag options: (on, off) -> the setting they switch
FLAGS = {("--serial", "--no-serial"): "serial", ("--vnc", "--no-vnc"): "vnc",
         ("--node-autostart", "--no-node-autostart"): "node_autostart"}  # fmt: skip
TEXT_OPTIONS = {
    "--vnc-bind": "vnc_bind",
    "--node-limit": "node_limit",
    "--node-selector": "node_selector",
    "--migration-method": "migration_method",
}
SYSTEM_HEADERS = ("NAME", "VCPUS", "MEMORY", "SERIAL", "VNC", "VNC BIND", "NODE LIMIT",
                  "SELECTOR", "AUTOSTART", "MIGRATION")  # fmt: skip
NETWORK_HEADERS = ("NAME", "MAC TEMPLATE", "NETWORKS")
DISK_HEADERS = ("DISK", "POOL", "SIZE", "SOURCE VOLUME", "FILESYSTEM", "MKFS ARGS", "MOUNTPOINT")
MIB = 1 << 20


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "provisioner", "provisioner template")
    api = client.for_options(options)
    kind = next((kind for kind in KINDS if arguments[kind]), None)
    name = arguments["<name>"]
    path = f"{BASE}/{kind}/{quote(name)}" if name else f"{BASE}/{kind}"
    answer = None
    if arguments["vni"]:
        answer = vni_command(api, path, arguments)
    elif arguments["disk"]:
        answer = disk_command(api, path, arguments)
    elif arguments["add"]:
        answer = api.post(f"{BASE}/{kind}", {"name": name} | added(kind, arguments))
    elif arguments["modify"]:
        answer = api.request("PUT", path, system_settings(arguments))
    elif arguments["remove"]:
        confirm_or_stop(f"Remove {kind} template '{name}'? (y/N) ", arguments["--yes"])
        answer = api.request("DELETE", path)
    if answer is not None:
        print(answer["message"])
        return 0
    output_format = check_format(arguments["--format"])
    if kind is None:
        found = api.get(BASE, {"limit": arguments["<limit>"]})
        print(render(found, output_format, every_kind_text))
    elif arguments["info"]:
        print(render(api.get(path), output_format, INFO_TEXTS[kind]))
    else:
        found = api.get(f"{BASE}/{kind}", {"limit": arguments["<limit>"]})
        print(render(found, output_format, LIST_TEXTS[kind]))
    return 0


def quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def added(kind: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a new template of `kind`, from the command line."""
    if kind == "system":
        return system_settings(arguments)
    if kind == "network":
        vnis = [str(whole_number(vni, "--vni")) for vni in arguments["--vni"]]
        return {"mac_template": arguments["--mac-template"], "networks": ",".join(vnis)}
    return {}


def system_settings(arguments: dict[str, Any]) -> dict[str, Any]:
    """The system settings the command line gives (None: not given)."""
    params: dict[str, Any] = {name: arguments[option] for option, name in TEXT_OPTIONS.items()}
    for (on, off), name in FLAGS.items():
        params[name] = True if arguments.get(on) else False if arguments.get(off) else None
    for option, name in (("--vcpus", "vcpus"), ("--memory", "memory")):
        if arguments[option] is not None:
            params[name] = whole_number(arguments[option], option)
    return params


def vni_command(api: client.ApiClient, path: str, arguments: dict[str, Any]) -> Any:
    vni = whole_number(arguments["<vni>"], "<vni>")
    if arguments["add"]:
        return api.post(f"{path}/net", {"vni": vni})
    return api.request("DELETE", f"{path}/net/{vni}")


def disk_command(api: client.ApiClient, path: str, arguments: dict[str, Any]) -> Any:
    disk_id = arguments["<disk_id>"]
    if arguments["remove"]:
        return api.request("DELETE", f"{path}/disk/{quote(disk_id)}")
    args = arguments["--fsarg"]
    for arg in args:
        if not arg or any(char.isspace() for char in arg):
            raise UsageError(f"--fsarg {arg[:40]!r}: one argument for mkfs, without spaces")
    params = {
        "disk_id": disk_id,
        "pool": arguments["--pool"],
        "size": arguments["--size"],
        "source_volume": arguments["--source-volume"],
        "filesystem": arguments["--filesystem"],
        "filesystem_args": " ".join(args) or None,
        "mountpoint": arguments["--mountpoint"],
    }
    return api.post(f"{path}/disk", params)


def _memory(mib: int) -> str:
    return format_size(mib * MIB)


def _size(size: int | None) -> str | None:
    return None if size is None else format_size(size)


def _profiles(template: dict[str, Any]) -> str | None:
    return ", ".join(template["profiles"]) or None


def system_list_text(found: list[dict[str, Any]]) -> str:
    rows = [
        [t["name"], t["vcpus"], _memory(t["memory"]), t["serial"], t["vnc"], t["vnc_bind"],
         ",".join(t["node_limit"]) or None, t["node_selector"], t["node_autostart"],
         t["migration_method"]]
        for t in found
    ]  # fmt: skip
    return table(SYSTEM_HEADERS, rows) if rows else "no system templates"


def system_info_text(template: dict[str, Any]) -> str:
    return key_values(
        [
            ("name", template["name"]),
            ("vcpus", template["vcpus"]),
            ("memory", _memory(template["memory"])),
            ("serial console", template["serial"]),
            ("vnc console", template["vnc"]),
            ("vnc bind", template["vnc_bind"]),
            ("node limit", ", ".join(template["node_limit"]) or None),
            ("node selector", template["node_selector"] or "the cluster's default"),
            ("node autostart", template["node_autostart"]),
            ("migration method", template["migration_method"]),
            ("used by", _profiles(template)),
        ]
    )


def _vnis(template: dict[str, Any]) -> str | None:
    return ", ".join(str(vni) for vni in template["networks"]) or None


def network_list_text(found: list[dict[str, Any]]) -> str:
    rows = [[t["name"], t["mac_template"], _vnis(t)] for t in found]
    return table(NETWORK_HEADERS, rows) if rows else "no network templates"


def network_info_text(template: dict[str, Any]) -> str:
    return key_values(
        [
            ("name", template["name"]),
            ("mac template", template["mac_template"] or "random addresses"),
            ("networks", _vnis(template)),
            ("used by", _profiles(template)),
        ]
    )


def _disk_rows(template: dict[str, Any]) -> list[list[Any]]:
    return [
        [d["disk_id"], d["pool"], _size(d["size"]), d["source_volume"], d["filesystem"],
         " ".join(d["filesystem_args"]) or None, d["mountpoint"]]
        for d in template["disks"]
    ]  # fmt: skip


def storage_list_text(found: list[dict[str, Any]]) -> str:
    """One row per disk, each with its template's name (an empty template: one row)."""
    rows = [[t["name"], *row] for t in found for row in _disk_rows(t) or [[None] * 7]]
    return table(("NAME", *DISK_HEADERS), rows) if rows else "no storage templates"


def storage_info_text(template: dict[str, Any]) -> str:
    head = key_values([("name", template["name"]), ("used by", _profiles(template))])
    rows = _disk_rows(template)
    return head + "\n\n" + (table(DISK_HEADERS, rows) if rows else "no disks")


LIST_TEXTS = {"system": system_list_text, "network": network_list_text,
              "storage": storage_list_text}  # fmt: skip
INFO_TEXTS = {"system": system_info_text, "network": network_info_text,
              "storage": storage_info_text}  # fmt: skip


def every_kind_text(found: dict[str, list[dict[str, Any]]]) -> str:
    return "\n\n".join(
        f"{kind.capitalize()} templates:\n{LIST_TEXTS[kind](found[kind])}" for kind in KINDS
    )
