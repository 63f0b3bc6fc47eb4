"""Upgrades of the Zookeeper tree from older schema versions to `schema.VERSION`.

`MIGRATIONS[n]` turns a version-n tree into a version n+1 tree: it returns the changes
(`values` to write, keys to `delete`, the new `/schema/version` among the values) for ONE
`ZKHandler.write`, which `upgrade` guards with the version of `/schema/version` read first,
so two daemons upgrading at once cannot both apply a step: the loser's write fails with
ConcurrentChange and it re-reads the version. A step may also change what a write cannot
(ACLs) before it returns its changes, if doing so twice is harmless.
"""

from collections.abc import Callable
from typing import Any

from pvc.errors import ConcurrentChange, ConfigError, Conflict
from pvc.zk import access, schema
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


def _from_2(zk: ZKHandler) -> Changes:
    """2 -> 3: every node of the tree (but /private, closed already) gets the cluster's ACL,
    so only sessions holding zookeeper.secret can read or change it (pvc.zk.access).

    Zookeeper cannot change ACLs in a transaction, so they are set first, node by node; a
    racing daemon setting them too is harmless. Nodes an older pvc creates after this (one
    still running during a rolling upgrade) are open: upgrade every node before relying on
    the ACLs, or run the step again (`pvc.zk.migrations.close_tree`)."""
    close_tree(zk)
    return {"values": {"base.schema.version": 3}}


def close_tree(zk: ZKHandler) -> int:
    """Sets the cluster's ACL on every node of pvc's tree but /private, and on the chroot
    node if there is one; returns how many."""
    if not zk.secret:
        raise ConfigError("zookeeper.secret is not set: it is needed to close the tree")
    roots = [schema.path(key) for key in schema.ROOTS if key != "base.private"]
    paths = zk.subtrees_bottom_up(roots) + (["/"] if zk.client.chroot else [])
    return zk.call(access.close_nodes, zk.client, paths, zk.secret)


def _from_3(zk: ZKHandler) -> Changes:
    """3 -> 4: the storage tree (/ceph/osds, pools, volumes, snapshots) appears."""
    values: dict[Any, Any] = {"base.schema.version": 4}
    for key in ("base.ceph", "base.ceph.osds", "base.ceph.pools", "base.ceph.volumes",
                "base.ceph.snapshots"):  # fmt: skip
        if not zk.exists(key):
            values[key] = ""
    return {"values": values}


def _from_4(zk: ZKHandler) -> Changes:
    """4 -> 5: the provisioner's folders (/provisioner/system, network, ...) appear."""
    values: dict[Any, Any] = {"base.schema.version": 5}
    values |= {key: "" for key in schema.PROVISIONER_TREE if not zk.exists(key)}
    return {"values": values}


MIGRATIONS: dict[int, Callable[[ZKHandler], Changes]] = {
    0: _from_0,
    1: _from_1,
    2: _from_2,
    3: _from_3,
    4: _from_4,
}


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
