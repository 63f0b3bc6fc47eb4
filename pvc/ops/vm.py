"""VM verbs: define, change, start/stop, move and migrate, list and describe.

Each verb validates its input, checks prerequisites against the current state, and writes all
its changes in ONE transaction guarded by the versions it read, so a refused or raced verb
leaves nothing half-written. The node daemon that owns a VM acts on what is written here
(pvc.node.vms); verbs that change a VM's state return at once, and `wait_for` lets a caller
follow the VM until it gets there.

States (`state`): start, restart, shutdown, stop, disable, migrate, fail. `node` is where the
VM runs or should run; `lastnode` where it returns on `unmigrate` (empty unless migrated).
"""

import fnmatch
import re
import time
import uuid as uuid_module
from dataclasses import dataclass
from typing import Any

from pvc.config import Config
from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import domain_xml, placement
from pvc.ops.cluster import require_initialized
from pvc.zk import schema
from pvc.zk.handler import ZKHandler

STATES = ("start", "restart", "shutdown", "stop", "disable", "migrate", "fail")
MIGRATION_METHODS = ("live", "shutdown", "none")
# What a VM record holds: JSON field -> schema key.
FIELDS = {
    "state": "domain.state",
    "node": "domain.node",
    "lastnode": "domain.lastnode",
    "node_limit": "domain.node_limit",
    "node_selector": "domain.node_selector",
    "node_autostart": "domain.node_autostart",
    "migration_method": "domain.migration_method",
    "memory": "domain.memory",
    "vcpus": "domain.vcpus",
    "tags": "domain.tags",
    "failed_reason": "domain.failed_reason",
    "observed": "domain.observed",
}


@dataclass(frozen=True)
class Policy:
    """Cluster-wide VM settings from the configuration."""

    selector: str = "mem"
    overcommit_ratio: float = 1.0

    @classmethod
    def from_config(cls, config: Config) -> "Policy":
        return cls(config.get("vm.default_selector"), config.get("vm.memory_overcommit_ratio"))


# --- finding and reading ---------------------------------------------------------------------


def find(zk: ZKHandler, vm: str) -> str:
    """The UUID of a VM given by name or UUID; NotFound otherwise."""
    require_initialized(zk)
    if schema.valid_name(vm):
        found = zk.read(("name.domain", vm))
        if found:
            return found
    try:
        uuid = str(uuid_module.UUID(vm))
    except ValueError:
        raise NotFound(f"VM '{vm}' does not exist") from None
    if not zk.exists(("domain", uuid)):
        raise NotFound(f"VM '{vm}' does not exist")
    return uuid


def _records(zk: ZKHandler, uuids: list[str]) -> list[dict[str, Any]]:
    """The VMs' records (from the API's cache, built once per change of the VM)."""
    built = [zk.memoized(("domain", uuid), lambda u=uuid: _build_record(zk, u)) for uuid in uuids]
    return [dict(record) for record in built if record is not None]  # callers may change them


def _build_record(zk: ZKHandler, uuid: str) -> dict[str, Any] | None:
    name, *rest = zk.read_many([(key, uuid) for key in ("domain", *FIELDS.values())])
    if name is None:
        return None  # removed while we read
    record = {"name": name, "uuid": uuid, **dict(zip(FIELDS, rest, strict=True))}
    record["lastnode"] = record["lastnode"] or ""
    record["node_limit"] = record["node_limit"] or []
    record["tags"] = record["tags"] or []
    return record


def list_vms(
    zk: ZKHandler, node: str | None = None, state: str | None = None, pattern: str | None = None
) -> list[dict[str, Any]]:
    """VMs sorted by name; filters: node, state, and a name pattern (glob or regex)."""
    require_initialized(zk)
    records = _records(zk, zk.children("base.domains"))
    if node:
        records = [r for r in records if r["node"] == node]
    if state:
        records = [r for r in records if r["state"] == state]
    if pattern:
        matcher = _matcher(pattern)
        records = [r for r in records if matcher(r["name"])]
    return sorted(records, key=lambda r: r["name"])


def _matcher(pattern: str) -> Any:
    if any(c in pattern for c in "*?["):
        return lambda name: fnmatch.fnmatchcase(name, pattern)
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InvalidInput(f"invalid name pattern {pattern!r}: {exc}") from None
    return lambda name: compiled.search(name) is not None


def info(zk: ZKHandler, vm: str) -> dict[str, Any]:
    return _record(zk, find(zk, vm), vm)


def _record(zk: ZKHandler, uuid: str, vm: str) -> dict[str, Any]:
    records = _records(zk, [uuid])
    if not records:
        raise NotFound(f"VM '{vm}' does not exist")
    return records[0]


def dump(zk: ZKHandler, vm: str) -> str:
    return zk.read(("domain.xml", find(zk, vm)))


def console_log(zk: ZKHandler, vm: str, lines: int) -> dict[str, Any]:
    if lines < 1:
        raise InvalidInput("lines must be 1 or more")
    text = zk.read(("domain.console_log", find(zk, vm))) or ""
    return {"name": vm, "lines": text.splitlines()[-lines:]}


# --- placement -------------------------------------------------------------------------------


def node_loads(zk: ZKHandler) -> dict[str, placement.NodeLoad]:
    """Every node's figures for placement: its keepalive plus the VMs assigned to it."""
    names = zk.children("base.nodes")
    keys = ("node.state.daemon", "node.state.domain", "node.stats")
    values = zk.read_many([(key, name) for name in names for key in keys])
    nodes = {}
    for index, name in enumerate(names):
        daemon, domain, stats = values[index * 3 : index * 3 + 3]
        stats = stats or {}
        nodes[name] = placement.NodeLoad(
            name,
            daemon or "unknown",
            domain or "unknown",
            stats.get("mem_total", 0),
            stats.get("mem_free", 0),
            stats.get("load", 0.0),
        )
    placement.add_vm_loads(nodes, vm_loads(zk))
    return nodes


def vm_loads(zk: ZKHandler) -> list[placement.VmLoad]:
    uuids = zk.children("base.domains")
    keys = ("domain.node", "domain.state", "domain.memory", "domain.vcpus")
    values = zk.read_many([(key, uuid) for uuid in uuids for key in keys])
    return [
        placement.VmLoad(values[i * 4] or "", values[i * 4 + 1] or "", values[i * 4 + 2] or 0,
                         values[i * 4 + 3] or 0)
        for i in range(len(uuids))
    ]  # fmt: skip


def _target(
    zk: ZKHandler,
    policy: Policy,
    record: dict[str, Any],
    requested: str | None,
    exclude: tuple[str, ...] = (),
) -> str:
    """The node a VM should go to: the requested one (checked) or the selector's choice."""
    nodes = node_loads(zk)
    limit = record["node_limit"] or None
    if requested:
        node = nodes.get(requested)
        if node is None:
            raise NotFound(f"node '{requested}' does not exist")
        if limit and requested not in limit:
            raise InvalidInput(
                f"node {requested} is outside the VM's node limit ({', '.join(limit)})"
            )
        if not node.usable:
            raise InvalidInput(
                f"node {requested} cannot take VMs: daemon {node.daemon_state}, "
                f"domain state {node.domain_state} (needs run and ready)"
            )
        if requested in exclude:
            raise InvalidInput(f"the VM is already on node {requested}")
        return requested
    selector = record["node_selector"] or policy.selector
    chosen = placement.choose_target_node(nodes.values(), selector, limit, exclude)
    if chosen is None:
        raise InvalidInput("no node in run and ready state can take the VM")
    return chosen


def _check_memory(zk: ZKHandler, policy: Policy, node: str, memory: int) -> None:
    complaint = placement.overcommit_complaint(
        node_loads(zk)[node], memory, policy.overcommit_ratio
    )
    if complaint:
        raise Conflict(f"refused: {complaint}")


# --- define and change -----------------------------------------------------------------------


def _options(limit: list[str] | None, selector: str | None, method: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if limit is not None:
        bad = [name for name in limit if not schema.valid_name(name)]
        if bad:
            raise InvalidInput(f"invalid node name in the node limit: {bad[0]!r}")
        options["domain.node_limit"] = limit
    if selector is not None:
        options["domain.node_selector"] = placement.check_selector(selector)
    if method is not None:
        if method not in MIGRATION_METHODS:
            raise InvalidInput(f"migration method must be one of {', '.join(MIGRATION_METHODS)}")
        options["domain.migration_method"] = method
    return options


def define(
    zk: ZKHandler,
    policy: Policy,
    xml: str,
    *,
    node: str | None = None,
    limit: list[str] | None = None,
    selector: str | None = None,
    autostart: bool = False,
    migration_method: str = "live",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """Adds a VM (stopped) from its libvirt XML; refuses a duplicate name or UUID."""
    require_initialized(zk)
    spec = domain_xml.parse(xml)
    _options(limit, selector, migration_method)  # validates them
    _check_tags(tags or [])
    if zk.exists(("name.domain", spec.name)):
        raise Conflict(f"a VM named '{spec.name}' already exists")
    if zk.exists(("domain", spec.uuid)):
        raise Conflict(f"a VM with UUID {spec.uuid} already exists")
    record = {"node_limit": limit or [], "node_selector": selector}
    target = _target(zk, policy, record, node)
    values = {
        ("domain", spec.uuid): spec.name,
        ("domain.xml", spec.uuid): xml,
        ("domain.state", spec.uuid): "stop",
        ("domain.node", spec.uuid): target,
        ("domain.lastnode", spec.uuid): "",
        ("domain.node_limit", spec.uuid): limit or [],
        ("domain.node_selector", spec.uuid): selector or "",
        ("domain.node_autostart", spec.uuid): autostart,
        ("domain.migration_method", spec.uuid): migration_method,
        ("domain.memory", spec.uuid): spec.memory,
        ("domain.vcpus", spec.uuid): spec.vcpus,
        ("domain.tags", spec.uuid): sorted(set(tags or [])),
        ("domain.failed_reason", spec.uuid): "",
        ("name.domain", spec.name): spec.uuid,
    }
    zk.write(values, expect={("name.domain", spec.name): -1, ("domain", spec.uuid): -1})
    return {"message": f"VM '{spec.name}' defined on {target}", "uuid": spec.uuid, "node": target}


def modify(zk: ZKHandler, vm: str, xml: str, restart: bool = False) -> dict[str, Any]:
    """Replaces the XML (same UUID; a new name renames); optionally restarts a running VM."""
    uuid = find(zk, vm)
    spec = domain_xml.parse(xml)
    if spec.uuid != uuid:
        raise InvalidInput(f"the new XML has UUID {spec.uuid}, not the VM's {uuid}")
    old_name, name_version = zk.read_versioned(("domain", uuid))
    values: dict[Any, Any] = {
        ("domain.xml", uuid): xml,
        ("domain.memory", uuid): spec.memory,
        ("domain.vcpus", uuid): spec.vcpus,
    }
    delete = []
    expect: dict[Any, int] = {("domain", uuid): name_version}
    if spec.name != old_name:
        values.update(_rename_changes(zk, uuid, old_name, spec.name, expect))
        delete.append(("name.domain", old_name))
    state, state_version = zk.read_versioned(("domain.state", uuid))
    if restart and state == "start":
        values[("domain.state", uuid)] = "restart"
        expect[("domain.state", uuid)] = state_version
    zk.write(values, expect=expect, delete=delete)
    then = ", restarting it" if restart and state == "start" else ""
    return {"message": f"VM '{spec.name}' modified{then}"}


def _rename_changes(
    zk: ZKHandler, uuid: str, old: str, new: str, expect: dict[Any, int]
) -> dict[Any, Any]:
    if not schema.valid_name(new):
        raise InvalidInput(f"invalid VM name {new!r}: {schema.NAME_RULE}")
    if new == old:
        raise InvalidInput(f"VM '{old}' already has that name")
    if zk.exists(("name.domain", new)):
        raise Conflict(f"a VM named '{new}' already exists")
    expect[("name.domain", new)] = -1
    return {("domain", uuid): new, ("name.domain", new): uuid}


def rename(zk: ZKHandler, vm: str, new_name: str) -> dict[str, Any]:
    """Renames a stopped VM (its XML <name> too)."""
    uuid = find(zk, vm)
    old, name_version = zk.read_versioned(("domain", uuid))
    state, state_version = zk.read_versioned(("domain.state", uuid))
    if state not in ("stop", "disable", "fail"):
        raise Conflict(f"VM '{old}' must be stopped to be renamed (it is {state})")
    expect: dict[Any, int] = {("domain", uuid): name_version, ("domain.state", uuid): state_version}
    values = _rename_changes(zk, uuid, old, new_name, expect)
    values[("domain.xml", uuid)] = domain_xml.renamed(zk.read(("domain.xml", uuid)), new_name)
    zk.write(values, expect=expect, delete=[("name.domain", old)])
    return {"message": f"VM '{old}' renamed to '{new_name}'"}


def set_meta(
    zk: ZKHandler,
    vm: str,
    *,
    limit: list[str] | None = None,
    selector: str | None = None,
    autostart: bool | None = None,
    migration_method: str | None = None,
) -> dict[str, Any]:
    uuid = find(zk, vm)
    values = {
        (key, uuid): value for key, value in _options(limit, selector, migration_method).items()
    }
    if autostart is not None:
        values[("domain.node_autostart", uuid)] = autostart
    if not values:
        raise InvalidInput("nothing to change: give limit, selector, autostart or migration_method")
    zk.write(values, expect={("domain", uuid): zk.read_versioned(("domain", uuid))[1]})
    return {"message": f"VM '{vm}' metadata updated"}


def set_tags(zk: ZKHandler, vm: str, add: list[str], remove: list[str]) -> dict[str, Any]:
    uuid = find(zk, vm)
    tags, version = zk.read_versioned(("domain.tags", uuid))
    _check_tags(add)
    new = sorted((set(tags or []) | set(add)) - set(remove))
    zk.write({("domain.tags", uuid): new}, expect={("domain.tags", uuid): version})
    return {"name": vm, "tags": new}


def _check_tags(tags: list[str]) -> None:
    for tag in tags:
        if not schema.valid_name(tag):
            raise InvalidInput(f"invalid tag {tag!r}: {schema.NAME_RULE}")


def undefine(zk: ZKHandler, vm: str, force: bool = False) -> dict[str, Any]:
    """Removes a VM's record (its disks, once pvc manages disks, stay). A VM that runs is
    refused unless `force`, which removes the record anyway: its node then destroys it."""
    uuid = find(zk, vm)
    name, version = zk.read_versioned(("domain", uuid))
    record = _record(zk, uuid, vm)
    if _is_running(record) and not force:
        raise Conflict(f"VM '{name}' is running; stop it first or use force")
    zk.write(
        {}, delete=[("domain", uuid), ("name.domain", name)], expect={("domain", uuid): version}
    )
    return {"message": f"VM '{name}' removed"}


def _is_running(record: dict[str, Any]) -> bool:
    observed = record["observed"] or {}
    return observed.get("state") == "running" or record["state"] in placement.ACTIVE_STATES


# --- state changes ---------------------------------------------------------------------------


def _set_state(
    zk: ZKHandler, vm: str, state: str, allowed_from: tuple[str, ...] | None = None, **extra: Any
) -> None:
    """Writes a new state (and extra keys), guarded by the state read and `allowed_from`."""
    uuid = find(zk, vm)
    current, version = zk.read_versioned(("domain.state", uuid))
    if allowed_from is not None and current not in allowed_from:
        raise Conflict(f"VM '{vm}' is {current}; cannot {state} it now")
    values = {("domain.state", uuid): state, **{(k, uuid): v for k, v in extra.items()}}
    zk.write(values, expect={("domain.state", uuid): version})


def start(zk: ZKHandler, policy: Policy, vm: str, force: bool = False) -> dict[str, Any]:
    record = info(zk, vm)
    if record["state"] == "disable" and not force:
        raise Conflict(f"VM '{vm}' is disabled; use force to start it anyway")
    if record["state"] in ("start", "restart", "migrate"):
        return {"message": f"VM '{vm}' is already {record['state']}"}
    node = node_loads(zk).get(record["node"])
    if node is None or not node.usable:
        why = "does not exist" if node is None else f"is {node.daemon_state}/{node.domain_state}"
        raise InvalidInput(
            f"VM '{vm}' belongs on node {record['node']}, which {why}; move it to another node"
        )
    _check_memory(zk, policy, record["node"], record["memory"])
    allowed = ("stop", "fail", "disable") if force else ("stop", "fail")
    _set_state(zk, vm, "start", allowed, **{"domain.failed_reason": ""})
    return {"message": f"VM '{vm}' starting on {record['node']}"}


def restart(zk: ZKHandler, vm: str) -> dict[str, Any]:
    _set_state(zk, vm, "restart", ("start",))
    return {"message": f"VM '{vm}' restarting"}


def shutdown(zk: ZKHandler, vm: str, force: bool = False) -> dict[str, Any]:
    _set_state(zk, vm, "shutdown", ("start", "restart"), **{"domain.shutdown_force": force})
    return {"message": f"VM '{vm}' shutting down"}


def stop(zk: ZKHandler, vm: str) -> dict[str, Any]:
    _set_state(zk, vm, "stop")
    return {"message": f"VM '{vm}' stopping (forced off)"}


def disable(zk: ZKHandler, vm: str) -> dict[str, Any]:
    _set_state(zk, vm, "disable")
    return {"message": f"VM '{vm}' disabled (stopped and kept off)"}


def migrate(
    zk: ZKHandler, policy: Policy, vm: str, node: str | None, force: bool = False
) -> dict[str, Any]:
    """Temporary move: records `lastnode` so unmigrate brings it home."""
    return _relocate(zk, policy, vm, node, permanent=False, force=force)


def move(zk: ZKHandler, policy: Policy, vm: str, node: str | None) -> dict[str, Any]:
    """Permanent move: clears `lastnode`."""
    return _relocate(zk, policy, vm, node, permanent=True)


def unmigrate(zk: ZKHandler, policy: Policy, vm: str) -> dict[str, Any]:
    record = info(zk, vm)
    if not record["lastnode"]:
        raise InvalidInput(f"VM '{vm}' is not migrated (no lastnode)")
    return _relocate(zk, policy, vm, record["lastnode"], permanent=True, home=True)


def _relocate(
    zk: ZKHandler,
    policy: Policy,
    vm: str,
    node: str | None,
    *,
    permanent: bool,
    force: bool = False,
    home: bool = False,
) -> dict[str, Any]:
    uuid = find(zk, vm)
    record = _record(zk, uuid, vm)
    current, node_version = zk.read_versioned(("domain.node", uuid))
    if record["state"] == "shutdown":
        raise Conflict(f"VM '{vm}' is shutting down; move it once it is stopped")
    if record["lastnode"] and not permanent and not force:
        raise Conflict(
            f"VM '{vm}' is already migrated (from {record['lastnode']}); "
            "use force to migrate it again, or unmigrate"
        )
    target = _target(zk, policy, record, node, exclude=(current,))
    state, version = zk.read_versioned(("domain.state", uuid))
    running = state in ("start", "restart", "migrate")
    if running and record["migration_method"] == "none":
        raise InvalidInput(f"VM '{vm}' has migration method none: shut it down to move it")
    if running:
        _check_memory(zk, policy, target, record["memory"])
    values: dict[Any, Any] = {("domain.node", uuid): target}
    lastnode = "" if home or permanent else record["lastnode"] or current
    values[("domain.lastnode", uuid)] = "" if lastnode == target else lastnode  # back home
    if running:
        values[("domain.state", uuid)] = "migrate"
    zk.write(values, expect={("domain.state", uuid): version, ("domain.node", uuid): node_version})
    verb = "returning" if home else ("moving" if permanent else "migrating")
    how = "" if running else " (it is not running: only its assignment changes)"
    return {"message": f"VM '{vm}' {verb} from {current} to {target}{how}", "node": target}


def wait_for(zk: ZKHandler, vm: str, states: tuple[str, ...], timeout: float) -> dict[str, Any]:
    """Polls until the VM is in one of `states` AND its node reports it so (running where it
    should run for start; not running for stop/disable); returns the record. Also returns
    when it failed: state fail, or back to start with a reason (a shutdown that timed out)."""
    deadline = time.monotonic() + timeout
    while True:
        record = info(zk, vm)
        observed = record["observed"] or {}
        running = observed.get("state") in ("running", "paused")
        if record["state"] == "start":
            settled = running and observed.get("node") == record["node"]
        else:
            settled = not running or observed.get("node") != record["node"]
        if record["state"] in states and settled:
            return record
        gave_up = record["state"] == "start" and "start" not in states and record["failed_reason"]
        if record["state"] == "fail" or gave_up:
            return record
        if time.monotonic() > deadline:
            raise Conflict(f"VM '{vm}' did not reach {'/'.join(states)} within {timeout:g} s")
        time.sleep(0.1)
