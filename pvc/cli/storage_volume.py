"""Usage:
  pvc storage volume add <pool> <name> <size>
  pvc storage volume remove <pool> <name> [--yes] [--force]
  pvc storage volume resize <pool> <name> <size> [--shrink]
  pvc storage volume rename <pool> <name> <new_name>
  pvc storage volume clone <pool> <name> <new_name> [--snapshot S]
  pvc storage volume upload <pool> <name> <file> [--image-format F] [--wait] [--format FORMAT]
  pvc storage volume info <pool> <name> [--format FORMAT]
  pvc storage volume list [<pool>] [--format FORMAT]
  pvc storage volume snapshot add <pool> <volume> <name>
  pvc storage volume snapshot rename <pool> <volume> <name> <new_name>
  pvc storage volume snapshot remove <pool> <volume> <name> [--yes]
  pvc storage volume snapshot rollback <pool> <volume> <name> [--yes]
  pvc storage volume snapshot list [<pool> [<volume>]] [--format FORMAT]
  pvc storage volume -h | --help

Commands:
  add       Add an RBD volume of <size>: a number and a binary unit, e.g. 10G, 512M, 4096B.
  remove    Remove a volume and its snapshots (asks first unless --yes); refused while a
            defined VM uses it, unless --force.
  resize    Grow a volume (a VM using it sees the new size), or shrink it with --shrink.
  rename    Rename a volume; refused while a VM uses it.
  clone     A new volume from a snapshot (copy-on-write), or a full copy without --snapshot.
  upload    Create volume <name> from a disk image <file> (raw, qcow2 or vmdk): a task with
            progress (see 'pvc cluster task'); qcow2 and vmdk are converted by qemu-img.
  info      One volume: size, features, parent, snapshots, the VMs using it.
  list      The volumes (of <pool>).
  snapshot  Snapshots of a volume: add, rename, remove, roll the volume back to one
            (refused while a running VM uses it), list.

Options:
  --force                     remove even if a defined VM uses the volume
  --shrink                    allow a size below the current one (data past it is lost)
  --snapshot S                clone from snapshot S (copy-on-write)
  --image-format F            the disk image's format: raw, qcow2 or vmdk [default: raw]
  -w, --wait                  follow the upload's conversion to its end
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
from pvc.ops.sizes import format_size

if TYPE_CHECKING:
    from pvc.__main__ import Globals

LIST_HEADERS = ("POOL", "NAME", "SIZE", "PARENT", "SNAPSHOTS", "FEATURES")
SNAPSHOT_HEADERS = ("POOL", "VOLUME", "NAME", "SIZE")


def quote(*names: str) -> str:
    return "/".join(urllib.parse.quote(name, safe="") for name in names)


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "storage")
    api = client.for_options(options)
    if arguments["snapshot"]:
        return snapshot_command(api, arguments)
    pool, name = arguments["<pool>"], arguments["<name>"]
    path = f"/storage/ceph/volume/{quote(pool, name)}" if name else ""
    if arguments["upload"]:
        from pvc.cli import storage_upload

        return storage_upload.upload(api, path, f"{pool}/{name}", arguments)
    answer = None
    if arguments["add"]:
        params = {"pool": pool, "volume": name, "size": arguments["<size>"]}
        answer = api.post("/storage/ceph/volume", params)
    elif arguments["remove"]:
        confirm_or_stop(f"Remove volume '{pool}/{name}'? (y/N) ", arguments["--yes"])
        answer = api.request("DELETE", path, {"force": arguments["--force"]})
    elif arguments["resize"]:
        params = {"size": arguments["<size>"], "shrink": arguments["--shrink"]}
        answer = api.request("PUT", path, params)
    elif arguments["rename"]:
        answer = api.request("PUT", path, {"new_name": arguments["<new_name>"]})
    elif arguments["clone"]:
        params = {"new_volume": arguments["<new_name>"], "snapshot": arguments["--snapshot"]}
        answer = api.post(path + "/clone", params)
    if answer is not None:
        print(answer["message"])
        return 0
    output_format = check_format(arguments["--format"])
    if arguments["info"]:
        print(render(api.get(path), output_format, info_text))
        return 0
    print(render(api.get("/storage/ceph/volume", {"pool": pool}), output_format, list_text))
    return 0


def snapshot_command(api: client.ApiClient, arguments: dict[str, Any]) -> int:
    pool, volume, name = arguments["<pool>"], arguments["<volume>"], arguments["<name>"]
    path = f"/storage/ceph/snapshot/{quote(pool, volume, name)}" if name else ""
    label = f"'{pool}/{volume}@{name}'"
    if arguments["add"]:
        params = {"pool": pool, "volume": volume, "snapshot": name}
        answer = api.post("/storage/ceph/snapshot", params)
    elif arguments["rename"]:
        answer = api.request("PUT", path, {"new_name": arguments["<new_name>"]})
    elif arguments["remove"]:
        confirm_or_stop(f"Remove snapshot {label}? (y/N) ", arguments["--yes"])
        answer = api.request("DELETE", path)
    elif arguments["rollback"]:
        question = f"Roll volume '{pool}/{volume}' back to {label}, losing later writes? (y/N) "
        confirm_or_stop(question, arguments["--yes"], "not rolled back")
        answer = api.post(path + "/rollback")
    else:
        output_format = check_format(arguments["--format"])
        snapshots = api.get("/storage/ceph/snapshot", {"pool": pool, "volume": volume})
        print(render(snapshots, output_format, snapshot_list_text))
        return 0
    print(answer["message"])
    return 0


def _size(value: Any) -> str | None:
    return None if value is None else format_size(int(value))


def list_text(volumes: list[dict[str, Any]]) -> str:
    rows = [
        [v["pool"], v["name"], _size(v["size"]), v["parent"], len(v["snapshots"]),
         ",".join(v["features"])]
        for v in volumes
    ]  # fmt: skip
    return table(LIST_HEADERS, rows) if rows else "no volumes"


def info_text(volume: dict[str, Any]) -> str:
    return key_values(
        [
            ("pool", volume["pool"]),
            ("name", volume["name"]),
            ("size", _size(volume["size"])),
            ("features", ",".join(volume["features"])),
            ("parent", volume["parent"]),
            ("snapshots", ", ".join(volume["snapshots"]) or None),
            ("used by", ", ".join(volume["users"]) or None),
        ]
    )


def snapshot_list_text(snapshots: list[dict[str, Any]]) -> str:
    rows = [[s["pool"], s["volume"], s["name"], _size(s.get("size"))] for s in snapshots]
    return table(SNAPSHOT_HEADERS, rows) if rows else "no snapshots"
