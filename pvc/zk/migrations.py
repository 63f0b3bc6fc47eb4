"""Upgrades of the Zookeeper tree from older schema versions to `schema.VERSION`.

`MIGRATIONS[n]` turns a version-n tree into a version n+1 tree: it returns the changes
(`values` to write, keys to `delete`, the new `/schema/version` among the values) for ONE
`ZKHandler.write`, which `upgrade` guards with the version of `/schema/version` read first,
so two daemons upgrading at once cannot both apply a step: the loser's write fails with
ConcurrentChange and it re-reads the version.
"""

from collections.abc import Callable
from typing import Any

from pvc.errors import ConcurrentChange, Conflict
from pvc.zk import schema
from pvc.zk.handler import ZKHandler

Changes = dict[str, Any]


def tree_version(zk: ZKHandler) -> int | None:
    """The schema version of the stored tree; None if no cluster was initialised."""
    version = zk.read("base.schema.version")
    if version is not None:
        return version
    if zk.exists("v0.primary_node"):
        return 0
    return None


def _from_0(zk: ZKHandler) -> Changes:
    """v0.7 layout -> 1: configuration keys move under /config; /schema appears."""
    values: dict[Any, Any] = {
        "base.config.primary_node": zk.read("v0.primary_node") or "none",
        "base.config.maintenance": bool(zk.read("v0.maintenance")),
        "base.config.upstream_ip": zk.read("v0.upstream_ip") or "",
        "base.schema.version": 1,
    }
    for key, value in schema.INITIAL_TREE.items():
        if key not in ("base.jobs", "base.names.domains") and not zk.exists(key):
            values.setdefault(key, value)
    gone = [
        key for key in ("v0.primary_node", "v0.maintenance", "v0.upstream_ip") if zk.exists(key)
    ]
    return {"values": values, "delete": gone}


def _from_1(zk: ZKHandler) -> Changes:
    """1 -> 2: the tree gains /jobs and /names/domains (every key of the initial tree that is
    missing is created)."""
    values: dict[Any, Any] = {"base.schema.version": 2}
    for key, value in schema.INITIAL_TREE.items():
        if key != "base.schema.version" and not zk.exists(key):
            values[key] = value
    return {"values": values}


MIGRATIONS: dict[int, Callable[[ZKHandler], Changes]] = {0: _from_0, 1: _from_1}


def upgrade(zk: ZKHandler) -> list[int]:
    """Applies every pending migration in order; returns the versions passed through."""
    steps: list[int] = []
    for _ in range(100):
        version = tree_version(zk)
        if version is None or version == schema.VERSION:
            return steps
        if version > schema.VERSION:
            raise Conflict(
                f"the cluster's schema version {version} is newer than this pvc "
                f"({schema.VERSION}); upgrade pvc"
            )
        stamp = zk.read_versioned("base.schema.version")[1]  # -1 for a v0 tree
        changes = MIGRATIONS[version](zk)
        expect = {"base.schema.version": stamp}
        try:
            zk.write(changes["values"], delete=changes.get("delete", ()), expect=expect)
        except ConcurrentChange:
            continue  # someone else migrated this step first; look again
        steps.append(version)
    raise ConcurrentChange("the schema kept changing under the upgrade; giving up")
