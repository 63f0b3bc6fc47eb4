"""OSD verbs: add and remove (jobs a node's daemon runs), in/out, cluster flags, list and info.

- `add`: a job (`osd_add`, runner: the node) that makes one of the node's disks a bluestore
  OSD in the node's CRUSH host (pvc.node.osd_jobs); the disk itself is checked there, on the
  node that has it. Refused here: an unknown node (404), a node whose daemon does not use Ceph
  or is not running (409), a disk already an OSD of the node or being added (409).
- `remove`: a job (`osd_remove`, runner: the OSD's node): out, drain, stop, purge, wipe.
  Refused here (409, naming the pools) when the OSDs left could not hold `min_size` copies of
  a pool (pvc.ops.osd_loss); an OSD Ceph has but pvc did not make is not pvc's to remove.
- `set_state` (in/out) and `set_option` (osd set/unset FLAG) are monitor commands, run from
  the API's host at once.
- `list_osds`/`info` answer from Zookeeper: pvc's records (`osd`, `osd.node`, `osd.device`,
  `osd.fsid`) merged with what the primary's statistics collector wrote (`osd.stats`, and
  `ceph.status`'s "osds": up, in, host, weight of every OSD Ceph has), plus the OSDs Ceph has
  that pvc did not make (`made_by_pvc` false, node = their CRUSH host): the list is complete.
"""

import math
import re
from typing import Any

from pvc.drivers.ceph_osds import dumped_osd, purge
from pvc.drivers.contracts import CephDriver
from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import jobs, osd_loss, user_input
from pvc.ops.cluster import require_initialized
from pvc.zk.store import Store

# The flags `ceph osd set|unset` takes (Pacific), but `full` (obsolete) and pglog_hardlimit
# (which cannot be unset).
FLAGS = (
    "noout", "noin", "nodown", "noup", "norebalance", "norecover", "nobackfill", "noscrub",
    "nodeep-scrub", "notieragent", "nosnaptrim", "pause",
)  # fmt: skip
STATES = ("in", "out")
DEVICE_MAX = 255  # characters of a device path
# An absolute, normalised path (no empty, "." or ".." parts) of printable ASCII without spaces:
# one way only to match any text (each part starts at a "/"). ECMA-262 and Python alike.
DEVICE_PATTERN = r"^(?:/(?!\.\.?(?:/|$))[!-.0-~]+)+$"
DEVICE = re.compile(DEVICE_PATTERN)
WEIGHT_MAX = 1000.0  # CRUSH weight (by convention TiB of the disk)
JOB_KINDS = ("osd_add", "osd_remove")


# --- input ------------------------------------------------------------------------------------


def require_osd_id(value: Any) -> int:
    """An OSD id as given (text or number): a non-negative integer; InvalidInput otherwise."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise InvalidInput(f"invalid OSD id {user_input.quoted(value)}: use its number, e.g. 3")
    return int(text)


def require_device(device: Any) -> str:
    """A device path: absolute and normalised, in printable ASCII without spaces."""
    if not isinstance(device, str) or len(device) > DEVICE_MAX or not DEVICE.fullmatch(device):
        raise InvalidInput(
            f"invalid device {user_input.quoted(device)}: give the disk's absolute path "
            "(e.g. /dev/sdb or /dev/disk/by-id/...)"
        )
    return device


def require_weight(weight: Any) -> float | None:
    if weight is None:
        return None
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise InvalidInput(f"invalid weight {user_input.quoted(weight)}: a number")
    if not 0 <= weight <= WEIGHT_MAX:
        raise InvalidInput(f"the weight must be between 0 and {WEIGHT_MAX:g} ({weight:g} given)")
    return float(weight)


# --- reading ----------------------------------------------------------------------------------


def _ceph_osds(zk: Store) -> dict[str, dict[str, Any]]:
    """What the statistics collector last saw of every OSD Ceph has, by id."""
    status = zk.read("ceph.status") or {}
    osds = status.get("osds") if isinstance(status, dict) else None
    return osds if isinstance(osds, dict) else {}


def _record(zk: Store, osd_id: str, seen: dict[str, Any] | None) -> dict[str, Any]:
    node, device, fsid, stats = zk.read_many(
        [("osd.node", osd_id), ("osd.device", osd_id), ("osd.fsid", osd_id), ("osd.stats", osd_id)]
    )
    return _merged(int(osd_id), node, device, fsid, stats, seen, True)


def _merged(osd_id: int, node: str | None, device: str | None, fsid: str | None,
            stats: Any, seen: dict[str, Any] | None, made: bool) -> dict[str, Any]:  # fmt: skip
    seen = seen or {}
    return {
        "id": osd_id,
        "node": node,
        "device": device,
        "fsid": fsid,
        "made_by_pvc": made,
        "up": seen.get("up"),
        "in": seen.get("in"),
        "host": seen.get("host"),
        "weight": seen.get("weight"),
        "stats": stats,
    }


def list_osds(zk: Store, node: str | None = None) -> list[dict[str, Any]]:
    """Every OSD pvc made or Ceph has, by id (only `node`'s, if given)."""
    require_initialized(zk)
    seen = _ceph_osds(zk)
    ids = [i for i in zk.children("base.ceph.osds") if i.isdigit()]
    records = [_record(zk, osd_id, seen.get(osd_id)) for osd_id in ids]
    for osd_id, found in seen.items():
        if osd_id not in ids and str(osd_id).isdigit():
            host = found.get("host")
            records.append(_merged(int(osd_id), host, None, None, None, found, False))
    records.sort(key=lambda record: record["id"])
    return [r for r in records if node is None or r["node"] == node]


def info(zk: Store, osd_id: Any) -> dict[str, Any]:
    """One OSD's record (see `list_osds`); NotFound if neither pvc nor Ceph has it."""
    number = require_osd_id(osd_id)
    require_initialized(zk)
    key = str(number)
    seen = _ceph_osds(zk).get(key)
    if zk.exists(("osd", key)):
        return _record(zk, key, seen)
    if seen is not None:
        return _merged(number, seen.get("host"), None, None, None, seen, False)
    raise NotFound(f"OSD {number} does not exist")


# --- add and remove: jobs ---------------------------------------------------------------------


def add(zk: Store, node: str, device: str, weight: float | None = None) -> dict[str, Any]:
    """Asks `node`'s daemon to make `device` an OSD: {"message", "task"}."""
    user_input.require_name(node, "node name")
    require_device(device)
    weight = require_weight(weight)
    require_initialized(zk)
    if not zk.exists(("node", node)):
        raise NotFound(f"node '{node}' does not exist")
    if not zk.exists(("node.storage_address", node)):
        raise Conflict(
            f"node '{node}' does not use Ceph: its daemon has no ceph.enabled, or has not "
            "reached Ceph yet"
        )
    if not zk.exists(("node.alive", node)):
        raise Conflict(f"node '{node}' is not running: its daemon must make the OSD")
    for record in list_osds(zk, node):
        if record["made_by_pvc"] and record["device"] == device:
            raise Conflict(f"{device} of node '{node}' is already osd.{record['id']}")
    for job in jobs.active(zk, ("osd_add",), node):
        if job["args"]["device"] == device:
            raise Conflict(f"{device} of node '{node}' is already being added (task {job['id']})")
    task, values = jobs.creation(
        "osd_add", {"node": node, "device": device, "weight": weight}, node
    )
    zk.write(values)
    return {"message": f"adding {device} of node '{node}' as an OSD (task {task})", "task": task}


def remove(zk: Store, ceph: CephDriver, osd_id: Any) -> dict[str, Any]:
    """Asks the OSD's node to drain and remove it: {"message", "task"} (the task already
    doing it, if there is one)."""
    number = require_osd_id(osd_id)
    require_initialized(zk)
    key = str(number)
    node, device = zk.read_many([("osd.node", key), ("osd.device", key)])
    if not zk.exists(("osd", key)):
        if key in _ceph_osds(zk) or dumped_osd(ceph, number) is not None:
            raise Conflict(f"osd.{number} was not made by pvc: remove it with Ceph's own tools")
        raise NotFound(f"OSD {number} does not exist")
    for job in jobs.active(zk, ("osd_remove",), node):
        if job["args"]["osd"] == number:
            return {"message": f"osd.{number} is already being removed", "task": job["id"]}
    if dumped_osd(ceph, number) is not None:
        pools = osd_loss.shortfalls(
            number,
            ceph.command("osd pool ls", detail="detail"),
            ceph.command("osd crush rule dump"),
            ceph.command("osd tree"),
        )
        if pools:
            raise Conflict(
                f"removing osd.{number} would leave pools below min_size: "
                + "; ".join(str(pool) for pool in pools)
            )
    if zk.read(("node.state.daemon", node)) in jobs.DEAD_NODE_STATES:
        return _forget_lost(zk, ceph, number, node)
    args = {"osd": number, "node": node, "device": device}
    task, values = jobs.creation("osd_remove", args, node)
    zk.write(values)
    return {"message": f"removing osd.{number} of node '{node}' (task {task})", "task": task}


def _forget_lost(zk: Store, ceph: CephDriver, number: int, node: str) -> dict[str, Any]:
    """The OSD of a node the fence monitor declared dead: no task can run there, and its data
    is gone with the node (the min_size check above kept the pools' copies); it is purged
    from Ceph from here and its records deleted. Its disk, if the node returns, still holds
    the old OSD: wipe it before adding it again."""
    purge(ceph, number, node)
    key = str(number)
    zk.write({}, delete=[("osd", key)])
    return {"message": f"osd.{number} of dead node '{node}' purged from Ceph; its disk was not "
            "wiped (the node is down)", "task": None}  # fmt: skip


# --- in/out and flags: monitor commands -------------------------------------------------------


def state(ceph: CephDriver, osd_id: Any) -> dict[str, Any]:
    """Ceph's own word on the OSD now: {"id", "up", "in"}."""
    number = require_osd_id(osd_id)
    osd = dumped_osd(ceph, number)
    if osd is None:
        raise NotFound(f"OSD {number} does not exist")
    return {"id": number, "up": bool(osd["up"]), "in": bool(osd["in"])}


def set_state(ceph: CephDriver, osd_id: Any, new_state: str) -> dict[str, Any]:
    """Marks the OSD in or out (Ceph moves data onto or off it)."""
    if new_state not in STATES:
        raise InvalidInput("the OSD state must be in or out")
    number = state(ceph, osd_id)["id"]
    ceph.mon_command({"prefix": f"osd {new_state}", "ids": [str(number)]})
    return {"message": f"osd.{number} is now {new_state}"}


def set_option(ceph: CephDriver, option: str, action: str) -> dict[str, Any]:
    """Sets or unsets a cluster-wide OSD flag (`ceph osd set noout`)."""
    if option not in FLAGS:
        raise InvalidInput(
            f"unknown OSD flag {user_input.quoted(option)}: use one of {', '.join(FLAGS)}"
        )
    if action not in ("set", "unset"):
        raise InvalidInput("the action must be set or unset")
    ceph.mon_command({"prefix": f"osd {action}", "key": option})
    return {"message": f"{option} is {'set' if action == 'set' else 'unset'}"}


def flags(ceph: CephDriver) -> list[str]:
    """The cluster flags set now (osd dump's flags_set)."""
    return list(ceph.command("osd dump").get("flags_set", []))
