"""Usage:
  pvc provisioner ova upload <name> <file> --pool P [--wait] [--format FORMAT]
  pvc provisioner ova info <name> [--format FORMAT]
  pvc provisioner ova list [<limit>] [--format FORMAT]
  pvc provisioner ova remove <name> [--yes]
  pvc provisioner ova -h | --help

Commands:
  upload   Import the OVA <file> as OVA <name>: its disks become volumes ova_<name>_vda, ...
           of pool P (converted by qemu-img), its virtual hardware is kept, and a profile
           <name> of type ova is made. A task with progress (see 'pvc cluster task').
  info     One OVA: its pool, volumes, virtual hardware and OVF summary.
  list     The OVAs (whose name contains <limit>).
  remove   Remove an OVA, its volumes and its profile (asks first unless --yes); refused
           while another profile uses it or a VM uses its volumes.

Options:
  --pool P                    the pool of the OVA's volumes
  -w, --wait                  follow the import to its end
  -y, --yes                   do not ask for confirmation
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pvc.cli import client
from pvc.cli.cluster import confirm_or_stop
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.parse import parse
from pvc.cli.storage_volume import quote
from pvc.ops.sizes import format_size

if TYPE_CHECKING:
    from pvc.__main__ import Globals

LIST_HEADERS = ("NAME", "POOL", "VCPUS", "MEMORY", "NICS", "VOLUMES")


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "provisioner", "provisioner ova")
    api = client.for_options(options)
    name = arguments["<name>"]
    path = f"/provisioner/ova/{quote(name)}" if name else ""
    if arguments["upload"]:
        from pvc.cli import storage_upload

        params = {"name": name, "pool": arguments["--pool"]}
        done = f"OVA '{name}' imported"
        return storage_upload.send_file(
            api, arguments, "/provisioner/ova", params, path + "/upload", done
        )
    if arguments["remove"]:
        question = f"Remove OVA '{name}', its volumes and its profile? (y/N) "
        confirm_or_stop(question, arguments["--yes"])
        print(api.request("DELETE", path)["message"])
        return 0
    output_format = check_format(arguments["--format"])
    if arguments["info"]:
        print(render(api.get(path), output_format, info_text))
        return 0
    ovas = api.get("/provisioner/ova", {"limit": arguments["<limit>"]})
    print(render(ovas, output_format, list_text))
    return 0


def _volumes(ova: dict[str, Any]) -> str:
    return ", ".join(f"{v['disk_id']}={v['volume']} ({format_size(v['size'])})"
                     for v in ova["volumes"])  # fmt: skip


def list_text(ovas: list[dict[str, Any]]) -> str:
    rows = [[o["name"], o["pool"], o["vcpus"], f"{o['memory']}M", o["nics"], _volumes(o)]
            for o in ovas]  # fmt: skip
    return table(LIST_HEADERS, rows) if rows else "no OVAs"


def info_text(ova: dict[str, Any]) -> str:
    return key_values(
        [
            ("name", ova["name"]),
            ("pool", ova["pool"]),
            ("vcpus", ova["vcpus"]),
            ("memory", f"{ova['memory']}M"),
            ("nics", ova["nics"]),
            ("volumes", _volumes(ova)),
            ("system", ova["ovf"].get("system")),
        ]
    )
