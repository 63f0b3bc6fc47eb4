"""VM records: define, change, rename and remove VMs; find, list and describe them.

Each verb validates its input, checks prerequisites against the current state, and writes all
its changes in ONE transaction guarded by the versions it read, so a refused or raced verb
leaves nothing half-written. State changes live in pvc.ops.vm_state, moves in
pvc.ops.vm_move; placement (which node, and whether it has room) in pvc.ops.allocation.

States (`state`): start, restart, shutdown, stop, disable, migrate, fail, and provision (being
built by `pvc provisioner create`: nothing but its task may change it). `node` is where the
VM runs or should run; `lastnode` where it returns on `unmigrate` (empty unless migrated).
Every answer names the VM by its real `name` and `uuid`, whichever of the two it was given by.
A VM is given by its UUID when the text is in UUID form (pvc.zk.schema.as_uuid), by its name
otherwise: no name may be in UUID form, so a name can never stand for another VM's UUID.
The user's text a verb stores is checked first against pvc.limits (pvc.ops.user_input).
"""

import json
from typing import Any

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import (
    allocation,
    domain_xml,
    jobs,
    network_vms,
    patterns,
    placement,
    user_input,
    vm_goals,
    vm_volumes,
)
from pvc.ops.cluster import require_initialized
from pvc.ops.placement import Policy
from pvc.zk import schema
from pvc.zk.handler import ZKHandler

STATES = ("start", "restart", "shutdown", "stop", "disable", "migrate", "fail", "provision")
PROVISIONING = "provision"  # being built by a provision task (pvc.node.provision)
RUNNING = vm_goals.RUNNING  # what a node reports for a VM that is up on it
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
# A node selector meaning "none of the VM's own: the cluster's vm.default_selector".
DEFAULT_SELECTOR = "default"


# --- finding and reading ---------------------------------------------------------------------


def find(zk: ZKHandler, vm: str) -> str:
    """The UUID of a VM given by name or UUID; NotFound otherwise."""
    require_initialized(zk)
    uuid = _lookup(zk, vm)
    if uuid is None:
        zk.catch_up()
        uuid = _lookup(zk, vm)
    if uuid is None:
        raise _not_found(vm)
    return uuid


def _not_found(vm: str) -> NotFound:
    return NotFound(f"VM {user_input.quoted(vm)} does not exist")


def require_not_provisioning(name: str, state: str | None) -> None:
    """Refuses (409) a change to a VM its provision task is still building."""
    if state == PROVISIONING:
        raise Conflict(f"VM '{name}' is being provisioned")


def provisioning_task(zk: ZKHandler, name: str) -> str | None:
    """The unfinished (queued or running) provision task that builds VM `name`, if any."""
    for job in jobs.list_jobs(zk, kind="provision"):
        if job["state"] not in jobs.ENDED and job["args"]["name"] == name:
            return job["id"]
    return None


def running_for_removal(zk: ZKHandler, record: dict[str, Any]) -> bool:
    """Whether the VM to remove runs (is_running). Refuses (409) one in state `provision`
    while a task builds it; once none does (its runner was declared dead, or it was cancelled
    before it ran: nothing undid what it made), removing it is how the administrator cleans
    up, and it does not run (no node starts a VM in that state)."""
    name = record["name"]
    if record["state"] != PROVISIONING:
        return is_running(record)
    task = provisioning_task(zk, name)
    if task is not None:
        raise Conflict(
            f"VM '{name}' is being provisioned (task {task}): wait for the task to end, or "
            f"cancel it (pvc cluster task cancel {task}); it removes what it made"
        )
    return False


def _lookup(zk: ZKHandler, vm: str) -> str | None:
    """The UUID of a VM by its UUID (text in UUID form) or else its name, if the store has it."""
    uuid = schema.as_uuid(vm)
    if uuid is not None:
        return uuid if zk.exists(("domain", uuid)) else None
    return zk.read(("name.domain", vm)) if schema.valid_name(vm) else None


def identify(zk: ZKHandler, vm: str) -> tuple[str, str]:
    """(uuid, name) of a VM given by name or UUID; NotFound otherwise."""
    uuid = find(zk, vm)
    name = zk.read(("domain", uuid))
    if name is None:
        raise _not_found(vm)  # removed meanwhile
    return uuid, name


def answer(uuid: str, name: str, message: str, **extra: Any) -> dict[str, Any]:
    """A verb's answer: its message and the VM it acted on."""
    return {"message": message, "name": name, "uuid": uuid, **extra}


class _Built:
    """A VM's record as built from the store, and its JSON text once asked for: a view keeps
    both until something under the VM changes, so a list of thousands of VMs neither reads
    nor encodes again what did not change."""

    __slots__ = ("record", "_json")

    def __init__(self, record: dict[str, Any]):
        self.record = record
        self._json: str | None = None

    def json(self) -> str:
        if self._json is None:
            self._json = json.dumps(self.record)  # a race only encodes it twice
        return self._json


def _built(zk: ZKHandler, uuids: list[str]) -> list[_Built]:
    def build(uuid: str) -> _Built | None:
        record = _build_record(zk, uuid)
        return None if record is None else _Built(record)

    found = [zk.memoized(("domain", uuid), lambda u=uuid: build(u)) for uuid in uuids]
    return [built for built in found if built is not None]


def _records(zk: ZKHandler, uuids: list[str]) -> list[dict[str, Any]]:
    """The VMs' records (from the API's cache, built once per change of the VM)."""
    return [dict(built.record) for built in _built(zk, uuids)]  # callers may change them


def _build_record(zk: ZKHandler, uuid: str) -> dict[str, Any] | None:
    name, xml, profile, *rest = zk.read_many(
        [(key, uuid) for key in ("domain", "domain.xml", "domain.profile", *FIELDS.values())]
    )
    if name is None:
        return None  # removed while we read
    record = {"name": name, "uuid": uuid, **dict(zip(FIELDS, rest, strict=True))}
    if profile:  # built by the provisioner (pvc.node.provision) from that profile
        record["profile"] = profile
    record["volumes"] = list(vm_volumes.volumes_of(xml))
    record["lastnode"] = record["lastnode"] or ""
    record["node_limit"] = record["node_limit"] or []
    record["tags"] = record["tags"] or []
    return record


def _selected(
    zk: ZKHandler,
    node: str | None = None,
    state: str | None = None,
    match: str | None = None,
    regex: bool = False,
) -> list[_Built]:
    """The VMs sorted by name, filtered by node, state and a name pattern (pvc.ops.patterns:
    a glob, or with `regex` a regular expression, matched in bounded time); a bad pattern is
    refused before anything is read."""
    if match is not None:
        patterns.check(match, regex)
    require_initialized(zk)
    selected = [
        built
        for built in _built(zk, zk.children("base.domains"))
        if (not node or built.record["node"] == node)
        and (not state or built.record["state"] == state)
    ]
    if match is not None:
        names = [built.record["name"] for built in selected]
        chosen = patterns.matching(match, names, regex)
        selected = [built for built, keep in zip(selected, chosen, strict=True) if keep]
    return sorted(selected, key=lambda built: built.record["name"])


def list_vms(
    zk: ZKHandler, node: str | None = None, state: str | None = None, pattern: str | None = None
) -> list[dict[str, Any]]:
    """VMs sorted by name; filters: node, state, and a name `pattern` (a glob, see _selected)."""
    return [dict(built.record) for built in _selected(zk, node, state, pattern)]


def list_matching_json(
    zk: ZKHandler,
    node: str | None = None,
    state: str | None = None,
    match: str | None = None,
    regex: bool = False,
) -> str:
    """The VMs by the name rule of the API and CLI (`match`: a glob matched against the whole
    name or, with `regex`, a regular expression searched in the name; node and state filters),
    as a JSON array built from each VM's JSON, kept until the VM changes."""
    return "[" + ", ".join(built.json() for built in _selected(zk, node, state, match, regex)) + "]"


def info(zk: ZKHandler, vm: str) -> dict[str, Any]:
    return read_record(zk, find(zk, vm), vm)


def read_record(zk: ZKHandler, uuid: str, vm: str) -> dict[str, Any]:
    """The VM's record, with its NICs and their addresses now (pvc.ops.network_vms: a lease
    changes without the VM, so they are not kept with the record as lists keep it)."""
    records = _records(zk, [uuid])
    if not records:
        raise _not_found(vm)
    return records[0] | {"nics": network_vms.nics(zk, zk.read(("domain.xml", uuid)))}


def dump(zk: ZKHandler, vm: str) -> dict[str, Any]:
    """The VM's libvirt domain XML, with its name and UUID."""
    uuid, name = identify(zk, vm)
    return {"name": name, "uuid": uuid, "xml": zk.read(("domain.xml", uuid))}


def console_log(zk: ZKHandler, vm: str, lines: int) -> dict[str, Any]:
    """The last `lines` lines of the VM's serial console."""
    if lines < 1:
        raise InvalidInput("lines must be 1 or more")
    uuid, name = identify(zk, vm)
    text = zk.read(("domain.console_log", uuid)) or ""
    return {"name": name, "uuid": uuid, "lines": text.splitlines()[-lines:]}


# --- define and change -----------------------------------------------------------------------


def _options(limit: list[str] | None, selector: str | None, method: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if limit is not None:
        options["domain.node_limit"] = user_input.require_node_limit(limit)
    if selector is not None:
        options["domain.node_selector"] = _selector(selector)
    if method is not None:
        if method not in MIGRATION_METHODS:
            raise InvalidInput(f"migration method must be one of {', '.join(MIGRATION_METHODS)}")
        options["domain.migration_method"] = method
    return options


def _selector(selector: str) -> str:
    """A VM's node selector as stored: "" for the cluster default ('default' or empty)."""
    if selector in ("", DEFAULT_SELECTOR):
        return ""
    if selector not in placement.SELECTORS:
        raise InvalidInput(
            f"unknown node selector {user_input.quoted(selector)} (use "
            f"{', '.join(placement.SELECTORS)}, "
            f"or {DEFAULT_SELECTOR} for the cluster's vm.default_selector)"
        )
    return selector


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
    spec = domain_xml.checked(xml)
    vm_volumes.require_existing(zk, spec.volumes)
    values, expect, target = definition(
        zk, policy, spec, xml, node=node, limit=limit, selector=selector, autostart=autostart,
        migration_method=migration_method, tags=tags,
    )  # fmt: skip
    zk.write(values, expect=expect)
    return answer(spec.uuid, spec.name, f"VM '{spec.name}' defined on {target}", node=target)


def definition(
    zk: ZKHandler,
    policy: Policy,
    spec: domain_xml.DomainSpec,
    xml: str,
    *,
    node: str | None,
    limit: list[str] | None,
    selector: str | None,
    autostart: bool,
    migration_method: str,
    tags: list[str] | None,
) -> tuple[dict[Any, Any], dict[Any, int], str]:
    """What defines a stopped VM from its checked XML: (values, expected versions, its node),
    for `define` and the provisioner (pvc.node.provision), which writes it in state
    `provision` before its volumes exist."""
    networks = network_vms.require_networks(zk, xml)
    selector = _options(limit, selector, migration_method).get("domain.node_selector")
    user_input.require_tags(tags or [])
    if node is not None:
        user_input.require_name(node, "node name")
    if zk.exists(("name.domain", spec.name)):
        raise Conflict(f"a VM named '{spec.name}' already exists")
    if zk.exists(("domain", spec.uuid)):
        raise Conflict(f"a VM with UUID {spec.uuid} already exists")
    record = {"node_limit": limit or [], "node_selector": selector}
    target = allocation.target(zk, policy, record, node)
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
    expect = {("name.domain", spec.name): -1, ("domain", spec.uuid): -1, **networks}
    return values, expect, target


def modify(
    zk: ZKHandler, policy: Policy, vm: str, xml: str, restart: bool = False
) -> dict[str, Any]:
    """Replaces the XML (same UUID and name: a new name is refused, rename does that);
    `restart` restarts a running VM to apply it, if its node's memory allows, as for start."""
    uuid = find(zk, vm)
    name, name_version = zk.read_versioned(("domain", uuid))
    if name is None:
        raise _not_found(vm)
    require_not_provisioning(name, zk.read(("domain.state", uuid)))
    spec = domain_xml.checked(xml)
    if spec.uuid != uuid:
        raise InvalidInput(f"the new XML has UUID {spec.uuid}, not the VM's {uuid}")
    if spec.name != name:
        raise Conflict(
            f"the XML names the VM '{spec.name}', not '{name}': modify keeps the name; "
            "use rename (on a stopped VM) to change it"
        )
    vm_volumes.require_existing(zk, spec.volumes)
    networks = network_vms.require_networks(zk, xml)
    xml_version = zk.read_versioned(("domain.xml", uuid))[1]
    memory = zk.read(("domain.memory", uuid)) or 0
    state, state_version = zk.read_versioned(("domain.state", uuid))
    values: dict[Any, Any] = {
        ("domain.xml", uuid): xml,
        ("domain.memory", uuid): spec.memory,
        ("domain.vcpus", uuid): spec.vcpus,
    }
    expect: dict[Any, int] = {
        ("domain", uuid): name_version,
        ("domain.xml", uuid): xml_version,
        **networks,
    }
    restarting = restart and state == "start"
    if not restarting:
        zk.write(values, expect=expect)
        return answer(uuid, name, f"VM '{name}' modified")
    # Its node counts the memory it runs with now; the restart runs it with the new.
    node, node_version = zk.read_versioned(("domain.node", uuid))
    values[("domain.state", uuid)] = "restart"
    expect |= {("domain.state", uuid): state_version, ("domain.node", uuid): node_version}
    allocation.allocate(
        zk, node, values, expect, lambda claim: claim.check(policy, spec.memory - memory)
    )
    return answer(uuid, name, f"VM '{name}' modified, restarting it")


def _rename_changes(
    zk: ZKHandler, uuid: str, old: str, new: str, expect: dict[Any, int]
) -> dict[Any, Any]:
    if new == old:
        raise InvalidInput(f"VM '{old}' already has that name")
    if zk.exists(("name.domain", new)):
        raise Conflict(f"a VM named '{new}' already exists")
    expect[("name.domain", new)] = -1
    return {("domain", uuid): new, ("name.domain", new): uuid}


def rename(zk: ZKHandler, vm: str, new_name: str) -> dict[str, Any]:
    """Renames a stopped VM (its XML <name> too)."""
    user_input.require_name(new_name, "VM name")
    uuid = find(zk, vm)
    old, name_version = zk.read_versioned(("domain", uuid))
    if old is None:
        raise _not_found(vm)
    state, state_version = zk.read_versioned(("domain.state", uuid))
    require_not_provisioning(old, state)
    if state not in ("stop", "disable", "fail"):
        raise Conflict(f"VM '{old}' must be stopped to be renamed (it is {state})")
    expect: dict[Any, int] = {("domain", uuid): name_version, ("domain.state", uuid): state_version}
    values = _rename_changes(zk, uuid, old, new_name, expect)
    xml = domain_xml.renamed(zk.read(("domain.xml", uuid)), new_name)
    domain_xml.checked(xml)
    values[("domain.xml", uuid)] = xml
    zk.write(values, expect=expect, delete=[("name.domain", old)])
    return answer(uuid, new_name, f"VM '{old}' renamed to '{new_name}'")


def set_meta(
    zk: ZKHandler,
    vm: str,
    *,
    limit: list[str] | None = None,
    selector: str | None = None,
    autostart: bool | None = None,
    migration_method: str | None = None,
) -> dict[str, Any]:
    """Changes the placement settings given; an empty limit means any node, an empty or
    'default' selector the cluster's vm.default_selector."""
    uuid, name = identify(zk, vm)
    values = {
        (key, uuid): value for key, value in _options(limit, selector, migration_method).items()
    }
    if autostart is not None:
        values[("domain.node_autostart", uuid)] = autostart
    if not values:
        return answer(uuid, name, f"VM '{name}': nothing to change")
    zk.write(values, expect={("domain", uuid): zk.read_versioned(("domain", uuid))[1]})
    return answer(uuid, name, f"VM '{name}' metadata updated")


def set_tags(zk: ZKHandler, vm: str, add: list[str], remove: list[str]) -> dict[str, Any]:
    """Adds and removes tags; answers the VM's tags after the change."""
    uuid, name = identify(zk, vm)
    tags, version = zk.read_versioned(("domain.tags", uuid))
    user_input.require_tags(add)
    new = sorted((set(tags or []) | set(add)) - set(remove))
    user_input.require_tags(new)
    zk.write({("domain.tags", uuid): new}, expect={("domain.tags", uuid): version})
    return {"name": name, "uuid": uuid, "tags": new}


def undefine(zk: ZKHandler, vm: str, force: bool = False) -> dict[str, Any]:
    """Removes a VM's record (its disks, once pvc manages disks, stay). A VM that runs is
    refused unless `force`, which removes the record anyway: its node then destroys it."""
    uuid = find(zk, vm)
    name, version = zk.read_versioned(("domain", uuid))
    record = read_record(zk, uuid, vm)
    if running_for_removal(zk, record) and not force:
        raise Conflict(f"VM '{name}' is running; stop it first or use force")
    zk.write(
        {}, delete=[("domain", uuid), ("name.domain", name)], expect={("domain", uuid): version}
    )
    return answer(uuid, name, f"VM '{name}' removed")


def is_running(record: dict[str, Any]) -> bool:
    return placement.is_running(record["state"], record["observed"])
