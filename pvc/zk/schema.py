"""Every Zookeeper path pvc uses, named once, with the type of the value it holds.

Code elsewhere never builds a path string: it asks `path("node.keepalive", name)`. Values are
stored as UTF-8 text and converted by the key's declared type on read and write (see
`encode`/`decode`), so `read("node.keepalive", n)` returns a float.

The tree is versioned: `/schema/version` holds the version the tree was written in, and
`MIGRATIONS` (in pvc.zk.migrations) upgrade an older tree step by step to `VERSION`.
Version 0 is the original PVC layout of v0.7 (top-level `/primary_node`, `/maintenance`,
`/upstream_ip`, no `/schema`); version 1 moves configuration under `/config`; version 2 adds
`/jobs` and the names index's parent `/names/domains`; version 3 closes every node to sessions
without the cluster secret (pvc.zk.access); version 4 adds the storage tree under `/ceph`;
version 5 adds the provisioner's records under `/provisioner`.
"""

import json
import re
import uuid as uuid_module
from typing import Any

from pvc import limits

VERSION = 5

# A key as callers name it: a name, or a name plus its placeholder values
# ("node.keepalive", "node1").
Key = str | tuple[str, ...]

# name -> (path template, value type). Types: str, int, float, bool, "json".
KEYS: dict[str, tuple[str, Any]] = {
    # base tree
    "base.schema": ("/schema", str),
    "base.schema.version": ("/schema/version", int),
    "base.config": ("/config", str),
    "base.config.cluster_name": ("/config/cluster_name", str),
    "base.config.maintenance": ("/config/maintenance", bool),
    "base.config.primary_node": ("/config/primary_node", str),
    "base.config.upstream_ip": ("/config/upstream_ip", str),
    "base.config.initialized": ("/config/initialized", float),
    "base.config.cluster_uuid": ("/config/cluster_uuid", str),  # the cluster's identity
    "base.nodes": ("/nodes", str),
    "base.domains": ("/domains", str),
    "base.networks": ("/networks", str),
    "base.ceph": ("/ceph", str),
    "base.locks": ("/locks", str),
    "base.jobs": ("/jobs", str),
    # locks (children are the lock recipes' contender nodes)
    "lock.primary_node": ("/locks/primary_node", str),
    "lock.primary_sync": ("/locks/primary_sync", str),
    "lock.node_name": ("/locks/node_name/{node}", str),
    # network adds, changes and removals one at a time (subnets and VNIs are checked across
    # networks: pvc.ops.network)
    "lock.networks": ("/locks/networks", str),
    # a create's MAC check and the write of those MACs one at a time (pvc.node.provision)
    "lock.provision": ("/locks/provision", str),
    # storage changes in a pool (and the pool's own add/remove) one at a time (pvc.ops.storage_*)
    "lock.storage_pool": ("/locks/storage_pool/{pool}", str),
    # nodes
    "node": ("/nodes/{node}", str),
    "node.mode": ("/nodes/{node}/daemonmode", str),
    "node.state.daemon": ("/nodes/{node}/daemonstate", str),
    "node.state.router": ("/nodes/{node}/routerstate", str),
    "node.state.domain": ("/nodes/{node}/domainstate", str),
    "node.alive": ("/nodes/{node}/alive", str),
    "node.static": ("/nodes/{node}/staticdata", "json"),
    "node.version": ("/nodes/{node}/pvcversion", str),
    "node.keepalive": ("/nodes/{node}/keepalive", float),
    "node.stats": ("/nodes/{node}/stats", "json"),
    # fencing: what happened to the node ({time, event, detail} entries, newest last)
    "node.fence_log": ("/nodes/{node}/fencelog", "json"),
    # placement: every allocation of memory to the node rewrites this key, and guards its
    # transaction with the version it read, so two allocations to one node cannot both pass
    "node.allocation": ("/nodes/{node}/allocation", float),
    # private keys (readable only with zookeeper.secret): a node's BMC and credentials
    "base.private": ("/private", str),
    "private.ipmi": ("/private/ipmi/{node}", "json"),
    # virtual machines, by UUID; the value of /domains/<uuid> is the VM's name
    "domain": ("/domains/{uuid}", str),
    "domain.xml": ("/domains/{uuid}/xml", str),
    "domain.state": ("/domains/{uuid}/state", str),
    "domain.node": ("/domains/{uuid}/node", str),
    "domain.lastnode": ("/domains/{uuid}/lastnode", str),
    "domain.node_limit": ("/domains/{uuid}/node_limit", "json"),
    "domain.node_selector": ("/domains/{uuid}/node_selector", str),
    "domain.node_autostart": ("/domains/{uuid}/node_autostart", bool),
    "domain.migration_method": ("/domains/{uuid}/migration_method", str),
    "domain.migration_max_downtime": ("/domains/{uuid}/migration_max_downtime", int),
    "domain.memory": ("/domains/{uuid}/memory", int),
    "domain.vcpus": ("/domains/{uuid}/vcpus", int),
    "domain.tags": ("/domains/{uuid}/tags", "json"),
    "domain.failed_reason": ("/domains/{uuid}/failedreason", str),
    "domain.shutdown_force": ("/domains/{uuid}/shutdown_force", bool),
    "domain.observed": ("/domains/{uuid}/observed", "json"),
    "domain.console_log": ("/domains/{uuid}/consolelog", str),
    # Ceph storage (pvc.ops.storage_*): what pvc made and what the primary's statistics
    # collector last saw. Every record is written by one verb's transaction after Ceph did its
    # part; the collector writes only the status, utilisation and *.stats keys.
    "ceph.status": ("/ceph/status", "json"),  # health, monitors, PG states: `ceph status`
    "ceph.util": ("/ceph/util", "json"),  # `ceph df`: raw and per-pool usage
    "ceph.updated": ("/ceph/updated", float),  # when the collector last wrote
    "base.ceph.osds": ("/ceph/osds", str),
    "osd": ("/ceph/osds/{osd}", str),  # value: the node the OSD lives on
    "osd.node": ("/ceph/osds/{osd}/node", str),
    "osd.device": ("/ceph/osds/{osd}/device", str),
    "osd.fsid": ("/ceph/osds/{osd}/fsid", str),  # the OSD's own UUID (ceph-volume's osd_uuid)
    "osd.stats": ("/ceph/osds/{osd}/stats", "json"),
    "base.ceph.pools": ("/ceph/pools", str),
    "pool": ("/ceph/pools/{pool}", str),
    "pool.pgs": ("/ceph/pools/{pool}/pgs", int),
    "pool.copies": ("/ceph/pools/{pool}/copies", int),
    "pool.mincopies": ("/ceph/pools/{pool}/mincopies", int),
    "pool.stats": ("/ceph/pools/{pool}/stats", "json"),
    "base.ceph.volumes": ("/ceph/volumes", str),
    "volumes.pool": ("/ceph/volumes/{pool}", str),
    "volume": ("/ceph/volumes/{pool}/{volume}", str),
    "volume.stats": ("/ceph/volumes/{pool}/{volume}/stats", "json"),  # size, features, parent
    "base.ceph.snapshots": ("/ceph/snapshots", str),
    "snapshots.pool": ("/ceph/snapshots/{pool}", str),
    "snapshots.volume": ("/ceph/snapshots/{pool}/{volume}", str),
    "snapshot": ("/ceph/snapshots/{pool}/{volume}/{snapshot}", str),
    "snapshot.stats": ("/ceph/snapshots/{pool}/{volume}/{snapshot}/stats", "json"),
    # a node's address as Ceph sees its clients (published by its daemon), and the blocklist
    # entry the storage fence added for it while it was dead ({addr, time}; removed when ready)
    "node.storage_address": ("/nodes/{node}/storageaddress", str),
    "node.storage_fence": ("/nodes/{node}/storagefence", "json"),
    # this node's firewall (pvc.node.firewall) as last loaded: {state: "ok"|"failed", detail,
    # time}; "failed" names the networks whose ACLs the kernel refused (loaded without them)
    "node.firewall": ("/nodes/{node}/firewall", "json"),
    # client networks, by VNI (pvc.ops.network*); the value of /networks/<vni> is its description
    "network": ("/networks/{vni}", str),
    "network.type": ("/networks/{vni}/nettype", str),  # managed | bridged
    "network.domain": ("/networks/{vni}/domain", str),  # DNS domain (managed)
    "network.name_servers": ("/networks/{vni}/name_servers", "json"),  # handed out by DHCP
    "network.mtu": ("/networks/{vni}/mtu", int),  # None: the largest the underlay allows
    "network.ip4_network": ("/networks/{vni}/ip4_network", str),  # 10.100.0.0/24 or None
    "network.ip4_gateway": ("/networks/{vni}/ip4_gateway", str),
    "network.dhcp4": ("/networks/{vni}/dhcp4_flag", bool),
    "network.dhcp4_start": ("/networks/{vni}/dhcp4_start", str),
    "network.dhcp4_end": ("/networks/{vni}/dhcp4_end", str),
    "network.ip6_network": ("/networks/{vni}/ip6_network", str),
    "network.ip6_gateway": ("/networks/{vni}/ip6_gateway", str),
    "network.dhcp6": ("/networks/{vni}/dhcp6_flag", bool),
    "network.nat": ("/networks/{vni}/nat", bool),  # source NAT to the upstream network
    # bridged only: the VLAN tag on networks.bridge_device (None: untagged on that device)
    "network.vlan": ("/networks/{vni}/vlan", int),
    # DHCP reservations and leases by MAC in path form (lowercase, '-' for ':'):
    # {ip, hostname}; leases also {expiry, client_id}, written back from the primary's dnsmasq
    "network.reservations": ("/networks/{vni}/dhcp4_reservations", str),
    "network.reservation": ("/networks/{vni}/dhcp4_reservations/{mac}", "json"),
    "network.leases": ("/networks/{vni}/dhcp4_leases", str),
    "network.lease": ("/networks/{vni}/dhcp4_leases/{mac}", "json"),
    # ACLs by direction (in | out) and description: {rule, order}
    "network.acls": ("/networks/{vni}/firewall_rules", str),
    "network.acls.direction": ("/networks/{vni}/firewall_rules/{direction}", str),
    "network.acl": ("/networks/{vni}/firewall_rules/{direction}/{acl}", "json"),
    # how the network is on each node, as that node's daemon last built it:
    # {state: "ok" | "failed", detail, time}
    "network.nodes": ("/networks/{vni}/nodes", str),
    "network.node": ("/networks/{vni}/nodes/{node}", "json"),
    # a node's address on the cluster network (the VXLAN underlay), published by its daemon
    "node.cluster_address": ("/nodes/{node}/clusteraddress", str),
    # unique names: /names/domains/<name> holds the VM's UUID
    "base.names": ("/names", str),
    "base.names.domains": ("/names/domains", str),
    "name.domain": ("/names/domains/{name}", str),
    # jobs (long operations), by id: the record, its runner's ephemeral claim, a cancel request
    "job": ("/jobs/{job}", "json"),
    "job.claim": ("/jobs/{job}/claim", str),
    "job.cancel": ("/jobs/{job}/cancel", float),
    # the provisioner's records (pvc.ops.provisioner_store): one JSON record per name and kind
    "base.provisioner": ("/provisioner", str),
    "provisioner.systems": ("/provisioner/system", str),
    "provisioner.system": ("/provisioner/system/{name}", "json"),
    "provisioner.networks": ("/provisioner/network", str),
    "provisioner.network": ("/provisioner/network/{name}", "json"),
    "provisioner.storages": ("/provisioner/storage", str),
    "provisioner.storage": ("/provisioner/storage/{name}", "json"),
    "provisioner.userdatas": ("/provisioner/userdata", str),
    "provisioner.userdata": ("/provisioner/userdata/{name}", "json"),
    "provisioner.scripts": ("/provisioner/script", str),
    "provisioner.script": ("/provisioner/script/{name}", "json"),
    "provisioner.ovas": ("/provisioner/ova", str),
    "provisioner.ova": ("/provisioner/ova/{name}", "json"),
    "provisioner.profiles": ("/provisioner/profile", str),
    "provisioner.profile": ("/provisioner/profile/{name}", "json"),
    # the profile a VM was provisioned from (the metadata service serves its userdata)
    "domain.profile": ("/domains/{uuid}/profile", str),
    # schema version 0 (original PVC v0.7): read only by the migration to version 1
    "v0.primary_node": ("/primary_node", str),
    "v0.maintenance": ("/maintenance", bool),
    "v0.upstream_ip": ("/upstream_ip", str),
}

# The provisioner's folders (schema version 5).
PROVISIONER_TREE = (
    "base.provisioner",
    "provisioner.systems",
    "provisioner.networks",
    "provisioner.storages",
    "provisioner.userdatas",
    "provisioner.scripts",
    "provisioner.ovas",
    "provisioner.profiles",
)

# Paths `pvc cluster init` creates, with their initial values.
INITIAL_TREE: dict[str, Any] = {
    "base.schema": "",
    "base.schema.version": VERSION,
    "base.config": "",
    "base.config.maintenance": False,
    "base.config.primary_node": "none",
    "base.config.upstream_ip": "",
    "base.nodes": "",
    "base.domains": "",
    "base.networks": "",
    "base.ceph": "",
    "base.locks": "",
    "base.names": "",
    "base.names.domains": "",
    "base.jobs": "",
    "base.ceph.osds": "",
    "base.ceph.pools": "",
    "base.ceph.volumes": "",
    "base.ceph.snapshots": "",
    **{key: "" for key in PROVISIONER_TREE},
    "lock.primary_node": "",
    "lock.primary_sync": "",
}

# The top-level keys pvc owns, in every schema version; `cluster init --overwrite` removes
# exactly these.
ROOTS = (
    "base.schema",
    "base.config",
    "base.nodes",
    "base.domains",
    "base.networks",
    "base.ceph",
    "base.locks",
    "base.names",
    "base.jobs",
    "base.provisioner",
    "base.private",
    "v0.primary_node",
    "v0.maintenance",
    "v0.upstream_ip",
)


# What a path component (a name, a UUID, a job id) may look like: nothing that leaves its folder.
COMPONENT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A UUID in the characters a name may hold: 32 hex digits, dashes anywhere between them. Such
# a string is always looked up as a UUID (`as_uuid`), so no name may have this form: a VM
# named with another's UUID would otherwise take over lookups by that UUID.
UUID_FORM = r"-*(?:[0-9A-Fa-f]-*){32}"
UUID_PATTERN = re.compile(UUID_FORM)
# What a name (node, VM, network, cluster ...) may look like: one path component of at most
# NAME_MAX characters, not in UUID form. The same pattern serves JSON Schema (ECMA-262).
NAME_PATTERN = re.compile(rf"(?!{UUID_FORM}$)[A-Za-z0-9][A-Za-z0-9._-]{{0,{limits.NAME_MAX - 1}}}")
NAME_RULE = (
    f"use 1 to {limits.NAME_MAX} letters, digits, '.', '-' and '_', starting with a letter or "
    "digit, and not in the form of a UUID"
)


def valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def valid_component(text: object) -> bool:
    """Whether `text` may be one path component (a name, a UUID, a job id)."""
    return isinstance(text, str) and COMPONENT_PATTERN.fullmatch(text) is not None


def as_uuid(text: str) -> str | None:
    """`text` as a UUID in canonical form, if it is in UUID form (see UUID_FORM)."""
    if not UUID_PATTERN.fullmatch(text):
        return None
    return str(uuid_module.UUID(text.replace("-", "")))


def mac_component(mac: str) -> str:
    """A MAC address (52:54:00:AB:CD:EF) as a path component: 52-54-00-ab-cd-ef."""
    return mac.lower().replace(":", "-")


def mac_from_component(text: str) -> str:
    return text.replace("-", ":")


def path(key: str, *args: str, **kwargs: str) -> str:
    """The Zookeeper path of `key`, with its placeholders filled in order or by name."""
    template = KEYS[key][0]
    if args:
        names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
        kwargs = dict(zip(names, args, strict=True)) | kwargs
    for value in kwargs.values():
        if not valid_component(value):
            raise ValueError(f"invalid name for {key}: {value!r}")
    return template.format(**kwargs)


# Keys whose children the schema does not name: the lock recipes' contender nodes.
UNNAMED_CHILDREN = (
    "lock.primary_node",
    "lock.primary_sync",
    "lock.node_name",
    "lock.storage_pool",
    "lock.networks",
    "lock.provision",
)


def _template_leaves() -> dict[int, list[tuple[tuple[str | None, ...], bool]]]:
    """Per path depth: each template as its components (None for a placeholder), and whether
    it is a leaf (no template continues below it)."""
    templates = {template for template, _ in KEYS.values()}
    parents = {KEYS[key][0] for key in UNNAMED_CHILDREN}
    by_depth: dict[int, list[tuple[tuple[str | None, ...], bool]]] = {}
    for template in templates:
        parts = tuple(None if p.startswith("{") else p for p in template.strip("/").split("/"))
        leaf = template not in parents and not any(
            other.startswith(template + "/") for other in templates
        )
        by_depth.setdefault(len(parts), []).append((parts, leaf))
    return by_depth


_TEMPLATES_BY_DEPTH = _template_leaves()


def is_leaf(path: str) -> bool:
    """True when the schema puts nothing below `path` (paths it does not know may have
    children)."""
    parts = path.strip("/").split("/")
    for template, leaf in _TEMPLATES_BY_DEPTH.get(len(parts), ()):
        if all(t is None or t == p for t, p in zip(template, parts, strict=True)):
            return leaf
    return False


def kind(key: str) -> Any:
    return KEYS[key][1]


def encode(value: Any, value_kind: Any = None) -> bytes:
    """Typed value -> stored bytes (bools as true/false, json as compact JSON, None as empty)."""
    if value is None:
        return b""
    if value_kind == "json" or isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode()


def decode(raw: bytes | None, value_kind: Any) -> Any:
    """Stored bytes -> typed value; an empty or missing value reads as None."""
    if raw is None or raw == b"":
        return None
    text = raw.decode()
    if value_kind is str:
        return text
    if value_kind is bool:
        return text.lower() in ("true", "1", "yes", "on")
    if value_kind == "json":
        return json.loads(text)
    return value_kind(text)
