"""Usage:
  pvc storage pool add <pool> <pgs> [--copies N] [--mincopies M]
  pvc storage pool remove <pool> [--yes]
  pvc storage pool info <pool> [--format FORMAT]
  pvc storage pool list [--format FORMAT]
  pvc storage pool -h | --help

Commands:
  add     Add a replicated RBD pool of <pgs> placement groups (a power of two, e.g. 64).
  remove  Remove a pool with every volume and snapshot in it (asks first unless --yes);
          refused while a VM uses one of its volumes.
  info    One pool: settings, volume count and usage.
  list    The pools pvc made, with their usage (as the primary last collected it).

Options:
  --copies N                  copies of each object (size) [default: 3]
  --mincopies M               copies needed to serve I/O (min_size) [default: 2]
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
from pvc.errors import UsageError
from pvc.ops.sizes import format_size

if TYPE_CHECKING:
    from pvc.__main__ import Globals

LIST_HEADERS = ("NAME", "PGS", "COPIES", "MINCOPIES", "VOLUMES", "USED", "FREE", "USED %")


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "storage")
    api = client.for_options(options)
    pool = arguments["<pool>"]
    if arguments["add"]:
        params = {
            "pool": pool,
            "pgs": whole_number(arguments["<pgs>"], "<pgs>"),
            "copies": whole_number(arguments["--copies"], "--copies"),
            "mincopies": whole_number(arguments["--mincopies"], "--mincopies"),
        }
        print(api.post("/storage/ceph/pool", params)["message"])
        return 0
    if arguments["remove"]:
        question = f"Remove pool '{pool}' and destroy every volume in it? (y/N) "
        confirm_or_stop(question, arguments["--yes"])
        print(api.request("DELETE", pool_path(pool), {"confirm": True})["message"])
        return 0
    output_format = check_format(arguments["--format"])
    if arguments["info"]:
        print(render(api.get(pool_path(pool)), output_format, info_text))
        return 0
    print(render(api.get("/storage/ceph/pool"), output_format, list_text))
    return 0


def whole_number(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise UsageError(f"{what} must be a whole number, not '{text[:40]}'")
    return int(text)


def pool_path(pool: str) -> str:
    return f"/storage/ceph/pool/{urllib.parse.quote(pool, safe='')}"


def _usage(stats: dict[str, Any] | None) -> list[Any]:
    stats = stats or {}
    used, free, percent = (stats.get(k) for k in ("used_bytes", "max_avail_bytes", "used_percent"))
    return [
        None if used is None else format_size(int(used)),
        None if free is None else format_size(int(free)),
        None if percent is None else f"{float(percent):.1f}",
    ]


def list_text(pools: list[dict[str, Any]]) -> str:
    rows = [
        [p["name"], p["pgs"], p["copies"], p["mincopies"], p["volumes"], *_usage(p["stats"])]
        for p in pools
    ]
    return table(LIST_HEADERS, rows) if rows else "no pools"


def info_text(pool: dict[str, Any]) -> str:
    used, free, percent = _usage(pool["stats"])
    return key_values(
        [
            ("name", pool["name"]),
            ("placement groups", pool["pgs"]),
            ("copies", pool["copies"]),
            ("min copies", pool["mincopies"]),
            ("volumes", pool["volumes"]),
            ("used", used),
            ("free", free),
            ("used %", percent),
        ]
    )
