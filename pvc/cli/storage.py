"""Usage:
  pvc storage status [--format FORMAT]
  pvc storage util [--format FORMAT]
  pvc storage osd ...
  pvc storage pool ...
  pvc storage volume ...
  pvc storage -h | --help

Commands:
  status   The Ceph cluster's health, monitors, OSD counts and placement groups.
  util     Raw and per-pool usage.
  osd      OSDs: add, remove, in, out, set, unset, list ('pvc storage osd --help').
  pool     Pools: add, remove, list ('pvc storage pool --help').
  volume   RBD volumes and their snapshots ('pvc storage volume --help').

Options:
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pvc.cli.parse import dispatch

if TYPE_CHECKING:
    from pvc.__main__ import Globals

SUBGROUPS = {
    "osd": "pvc.cli.storage_osd",
    "pool": "pvc.cli.storage_pool",
    "volume": "pvc.cli.storage_volume",
    "status": "pvc.cli.storage_status",
    "util": "pvc.cli.storage_status",
}


def main(args: list[str], options: Globals) -> int:
    return dispatch(__doc__, args, options, "storage", SUBGROUPS)
