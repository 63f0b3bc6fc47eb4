"""Usage:
  pvc network dhcp add <vni> <mac> <ip> [--hostname NAME]
  pvc network dhcp remove <vni> <mac>
  pvc network dhcp list <vni> [--static] [--format FORMAT]
  pvc network dhcp -h | --help

Commands:
  add     Reserve <ip> (in the network's subnet) for the NIC with MAC <mac>.
  remove  Remove a MAC's reservation (a lease it has runs out by itself).
  list    The network's reservations and leases, one line per MAC.

Options:
  --hostname NAME             the host name DHCP and DNS give the reserved address
  --static                    reservations only
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from pvc.cli import client
from pvc.cli.format import check_format, render, table
from pvc.cli.network import network_path
from pvc.cli.parse import parse

if TYPE_CHECKING:
    from pvc.__main__ import Globals

LIST_HEADERS = ("MAC", "IP", "HOSTNAME", "STATIC", "EXPIRES")


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "network", "network dhcp")
    api = client.for_options(options)
    path = network_path(arguments["<vni>"]) + "/lease"
    if arguments["add"]:
        params = {"mac": arguments["<mac>"], "ip": arguments["<ip>"]}
        print(api.post(path, params | {"hostname": arguments["--hostname"]})["message"])
        return 0
    if arguments["remove"]:
        mac = urllib.parse.quote(arguments["<mac>"], safe=":")
        print(api.request("DELETE", f"{path}/{mac}")["message"])
        return 0
    output_format = check_format(arguments["--format"])
    found = api.get(path, {"static": True} if arguments["--static"] else None)
    print(render(found, output_format, list_text))
    return 0


def _expires(expiry: Any) -> str | None:
    if not isinstance(expiry, int | float) or not expiry:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(expiry))


def list_text(rows: list[dict[str, Any]]) -> str:
    lines = [
        [row["mac"], row["ip"], row["hostname"], row["static"], _expires(row["expiry"])]
        for row in rows
    ]
    return table(LIST_HEADERS, lines) if lines else "no reservations or leases"
