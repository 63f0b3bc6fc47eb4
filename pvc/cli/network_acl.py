"""Usage:
  pvc network acl add <vni> <description> --direction DIR --rule RULE [--order N]
  pvc network acl remove <vni> <description> [--direction DIR]
  pvc network acl list <vni> [--direction DIR] [--format FORMAT]
  pvc network acl -h | --help

Commands:
  add     Add an ACL: one nft rule (e.g. 'tcp dport 22 accept') in the network's in chain
          (traffic to its VMs) or out chain (from them), checked by nft first.
  remove  Remove an ACL (--direction where both directions have one of that description).
  list    The network's ACLs, in then out, each in order.

Options:
  --direction DIR             in or out
  --rule RULE                 the nft rule
  --order N                   its place in the chain (default: after the last)
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from pvc.cli import client
from pvc.cli.format import check_format, render, table
from pvc.cli.network import network_path
from pvc.cli.parse import parse
from pvc.cli.storage_pool import whole_number

if TYPE_CHECKING:
    from pvc.__main__ import Globals

LIST_HEADERS = ("DIRECTION", "ORDER", "DESCRIPTION", "RULE")


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "network", "network acl")
    api = client.for_options(options)
    path = network_path(arguments["<vni>"]) + "/acl"
    direction = arguments["--direction"]
    if arguments["add"]:
        order = arguments["--order"]
        params = {
            "direction": direction,
            "description": arguments["<description>"],
            "rule": arguments["--rule"],
            "order": None if order is None else whole_number(order, "--order"),
        }
        print(api.post(path, params)["message"])
        return 0
    if arguments["remove"]:
        description = urllib.parse.quote(arguments["<description>"], safe="")
        answer = api.request("DELETE", f"{path}/{description}", {"direction": direction})
        print(answer["message"])
        return 0
    output_format = check_format(arguments["--format"])
    print(render(api.get(path, {"direction": direction}), output_format, list_text))
    return 0


def list_text(acls: list[dict[str, Any]]) -> str:
    rows = [[acl["direction"], acl["order"], acl["description"], acl["rule"]] for acl in acls]
    return table(LIST_HEADERS, rows) if rows else "no ACLs"
