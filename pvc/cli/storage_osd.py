"""Usage:
  pvc storage osd add <node> <device> [--weight W] [--wait] [--format FORMAT]
  pvc storage osd remove <id> [--yes] [--wait] [--format FORMAT]
  pvc storage osd (in | out) <id>
  pvc storage osd (set | unset) <flag>
  pvc storage osd list [<node>] [--format FORMAT]
  pvc storage osd info <id> [--format FORMAT]
  pvc storage osd -h | --help

Commands:
  add     Make a node's whole disk (e.g. /dev/sdb) a Ceph OSD in the node's CRUSH host: a
          task the node's daemon runs (see 'pvc cluster task'). The disk must hold nothing (no
          filesystem, partition table or OSD label, not mounted).
  remove  Remove an OSD pvc made: marked out, its data moved to the other OSDs (progress: PGs
          left), stopped, purged from Ceph, its disk wiped; asks first unless --yes. Refused
          when the OSDs left could not keep a pool's min_size copies.
  in      Mark an OSD in: Ceph places data on it again.
  out     Mark an OSD out: Ceph moves its data to the others.
  set     Set a cluster-wide OSD flag: noout, noin, nodown, noup, norebalance, norecover,
          nobackfill, noscrub, nodeep-scrub, notieragent, nosnaptrim or pause.
  unset   Unset such a flag.
  list    Every OSD (or only <node>'s): pvc's and any Ceph has that pvc did not make.
  info    One OSD.

Options:
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
  --weight W                  the OSD's CRUSH weight (default: from the disk's size)
  -w, --wait                  follow the task to its end (a progress bar on a terminal, a
                              line per step otherwise; exit 1 if it fails or is cancelled)
  -y, --yes                   do not ask for confirmation
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from pvc.cli import client, tasks
from pvc.cli.cluster import confirm_or_stop
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.parse import parse
from pvc.errors import UsageError

if TYPE_CHECKING:
    from pvc.__main__ import Globals

PATH = "/storage/ceph/osd"
LIST_HEADERS = ("ID", "NODE", "DEVICE", "UP", "IN", "WEIGHT", "USED", "PGS", "MADE BY PVC")
REMOVE_QUESTION = "Remove osd.{id}: drain it, purge it from Ceph and wipe its disk? (y/N) "


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "storage", "storage osd")
    output_format = check_format(arguments["--format"])
    api = client.for_options(options)
    osd = arguments["<id>"]
    if arguments["list"]:
        records = api.get(PATH, {"node": arguments["<node>"]} if arguments["<node>"] else {})
        print(render(records, output_format, list_text))
    elif arguments["info"]:
        print(render(api.get(osd_path(osd)), output_format, info_text))
    elif arguments["add"]:
        params: dict[str, Any] = {"node": arguments["<node>"], "device": arguments["<device>"]}
        if arguments["--weight"] is not None:
            params["weight"] = _weight(arguments["--weight"])
        answer = api.post(PATH, params)
        return tasks.show_or_follow(api, answer, arguments["--wait"], output_format)
    elif arguments["remove"]:
        confirm_or_stop(REMOVE_QUESTION.format(id=osd), arguments["--yes"], "aborted")
        answer = api.request("DELETE", osd_path(osd))
        return tasks.show_or_follow(api, answer, arguments["--wait"], output_format)
    elif arguments["in"] or arguments["out"]:
        state = "in" if arguments["in"] else "out"
        print(api.post(osd_path(osd, "/state"), {"state": state})["message"])
    else:
        action = "set" if arguments["set"] else "unset"
        answer = api.post("/storage/ceph/option", {"option": arguments["<flag>"], "action": action})
        print(answer["message"])
    return 0


def osd_path(osd: str, tail: str = "") -> str:
    return f"{PATH}/{urllib.parse.quote(osd, safe='')}{tail}"


def _weight(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--weight must be a number, not {text[:40]!r}") from None


def _used(stats: dict[str, Any] | None) -> str | None:
    if not stats or stats.get("utilization") is None:
        return None
    return f"{float(stats['utilization']):.1f}%"


def _weight_text(osd: dict[str, Any]) -> str | None:
    """The CRUSH weight (TiB, as Ceph counts it) to 4 decimals: Ceph stores it in 1/65536ths,
    whose exact value is noise."""
    weight = osd["weight"]
    return None if weight is None else f"{float(weight):.4f}"


def list_text(records: list[dict[str, Any]]) -> str:
    """The pretty form of GET /storage/ceph/osd."""
    rows = []
    for osd in records:
        stats = osd["stats"] or {}
        rows.append(
            [osd["id"], osd["node"], osd["device"], osd["up"], osd["in"], _weight_text(osd),
             _used(stats), stats.get("pgs"), osd["made_by_pvc"]]
        )  # fmt: skip
    return table(LIST_HEADERS, rows) if rows else "no OSDs"


def info_text(osd: dict[str, Any]) -> str:
    """The pretty form of GET /storage/ceph/osd/<id>."""
    stats = osd["stats"] or {}
    return key_values(
        [
            ("id", osd["id"]),
            ("node", osd["node"]),
            ("device", osd["device"]),
            ("fsid", osd["fsid"]),
            ("made by pvc", osd["made_by_pvc"]),
            ("up", osd["up"]),
            ("in", osd["in"]),
            ("CRUSH host", osd["host"]),
            ("weight", _weight_text(osd)),
            ("used", _used(stats)),
            ("PGs", stats.get("pgs")),
        ]
    )
