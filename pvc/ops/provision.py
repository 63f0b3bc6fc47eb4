"""`pvc provisioner create NAME PROFILE`: a VM built from a profile, as a task.

The verb checks what it can at once (the name is free and no task builds it, the profile and
every record it names exist, their pools, source volumes and networks exist, the volumes to
make do not, MACs from the template are free, the pools have room), so bad input is a 4xx
now rather than a failed task; then it writes the `provision` job in one transaction. The
job (pvc.node.provision) plans again from the records as they are when it runs (`plan`,
shared with this verb) and builds the VM step by step.

What a plan holds: the VM's vCPUs and memory (the system template's; for an `ova` profile the
OVA's unless the profile names a system template), its disks (volume `<vm>_<disk_id>` in the
disk's pool: a new one of the disk's size, or a full copy of a source volume grown to the
size), its networks (VNIs in NIC order), MACs from the network template's mac_template, the
install script, and the script's arguments (the profile's, overridden by the request's).
"""

from dataclasses import dataclass, field
from typing import Any

from pvc.config import Config
from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import (
    jobs,
    network_records,
    provision_xml,
    provisioner_records,
    provisioner_templates,
    storage_ceph,
    user_input,
    vm,
)
from pvc.ops import provisioner_store as records
from pvc.ops.cluster import require_initialized
from pvc.zk import schema
from pvc.zk.store import Store

# What a VM built without a script but with filesystems to prepare runs (pvc.node.install_runner)
BASE_SCRIPT = f"class {provisioner_records.SCRIPT_CLASS}(VMBuilder):\n    pass\n"
# A system template's fields for an ova profile without one (vCPUs and memory: the OVA's).
OVA_SYSTEM = provisioner_templates.SYSTEM_DEFAULTS | {"serial": True}


@dataclass
class Plan:
    name: str
    profile: str
    system: dict[str, Any]  # the system template's record (or OVA_SYSTEM and the OVA's sizes)
    disks: list[dict[str, Any]]  # the install script's disks (pvc.node.install_runner)
    networks: list[int]
    mac_template: str | None
    script: tuple[str, str] | None  # (name, text)
    arguments: dict[str, str]
    template_macs: list[str] = field(default_factory=list)

    @property
    def vcpus(self) -> int:
        return int(self.system["vcpus"])

    @property
    def memory(self) -> int:
        return int(self.system["memory"])

    def room(self, store: Store) -> dict[str, int]:
        """Bytes each pool gets: a disk's size, or its source's if that is larger."""
        needed: dict[str, int] = {}
        for disk in self.disks:
            size = disk["size"]
            if disk["source_volume"]:
                stats = store.read(("volume.stats", disk["pool"], disk["source_volume"])) or {}
                size = max(size, int(stats.get("size") or 0))
            needed[disk["pool"]] = needed.get(disk["pool"], 0) + size
        return needed


# --- the verb --------------------------------------------------------------------------------


def create(
    store: Store,
    config: Config,
    name: str,
    profile: str,
    *,
    define_only: bool = False,
    start: bool = True,
    arguments: dict[str, str] | None = None,
    runner: str | None = None,
) -> dict[str, Any]:
    """Checks the request and queues the job that builds the VM: {"message", "task"}."""
    require_initialized(store)
    arguments = provisioner_records.require_arguments(arguments or {})
    runner = _require_runner(store, runner)
    found = plan(store, name, profile, arguments)
    task = vm.provisioning_task(store, name)
    if task is not None:
        raise Conflict(f"VM '{name}' is being provisioned already (task {task})")
    check_room(store, config, found)
    args = {"name": name, "profile": profile, "define_only": define_only, "start": start,
            "arguments": arguments}  # fmt: skip
    task, values = jobs.creation("provision", args, runner)
    store.write(values)
    return {"message": f"provisioning VM '{name}' from profile '{profile}' (task {task})",
            "task": task}  # fmt: skip


def _require_runner(store: Store, runner: str | None) -> str:
    """The job's runner: a live node that reaches Ceph, or (None) whichever is primary."""
    if runner is None:
        primary = store.read("base.config.primary_node")
        if primary not in (None, "none") and not store.exists(("node.storage_address", primary)):
            raise Conflict(f"the primary, node '{primary}', does not use Ceph: name a runner")
        return jobs.PRIMARY
    user_input.require_name(runner, "node name")
    if not store.exists(("node", runner)):
        raise NotFound(f"node '{runner}' does not exist")
    if not store.exists(("node.storage_address", runner)):
        raise Conflict(f"node '{runner}' does not use Ceph: it cannot make the VM's volumes")
    if not store.exists(("node.alive", runner)):
        raise Conflict(f"node '{runner}' is not running")
    return runner


def check_room(store: Store, config: Config, found: Plan) -> None:
    """The pool fill check (pvc.ops.storage_ceph.check_room) for all the VM's disks."""
    for pool, size in found.room(store).items():
        storage_ceph.check_room(store, config, pool, size)


# --- the plan --------------------------------------------------------------------------------


def plan(store: Store, name: str, profile: str, arguments: dict[str, str]) -> Plan:
    """What building `name` from `profile` takes, checked against the records (see the
    module docstring); 400/404/409 naming what is wrong."""
    user_input.require_name(name, "VM name")
    if schema.as_uuid(name) is not None:
        raise InvalidInput(f"invalid VM name '{name}': a name may not be in the form of a UUID")
    record = records.read(store, "profile", profile)
    if store.exists(("name.domain", name)):
        raise Conflict(f"a VM named '{name}' already exists")

    def named(kind: str, field_name: str) -> dict[str, Any] | None:
        chosen = record.get(field_name)
        return None if chosen is None else records.read(store, kind, chosen)

    system, network, storage = (named(kind, f"{kind}_template")
                                for kind in ("system", "network", "storage"))  # fmt: skip
    script = named("script", "script")
    named("userdata", "userdata")  # served by the metadata service: it must exist
    if record.get("type") == "ova":
        ova = named("ova", "ova")
        if ova is None:
            raise InvalidInput(f"profile '{profile}' is of type ova but names no OVA")
        system = system or OVA_SYSTEM | {"vcpus": ova["vcpus"], "memory": ova["memory"]}
        disks = [_disk(name, ova["pool"], v["disk_id"], v["size"], v["volume"])
                 for v in ova["volumes"]]  # fmt: skip
    else:
        if system is None:
            raise InvalidInput(f"profile '{profile}' names no system template")
        disks = [
            _disk(name, d["pool"], d["disk_id"], d.get("size"), d.get("source_volume"), d)
            for d in (storage or {}).get("disks", [])
        ]
    for disk in disks:
        _check_disk(store, disk)
    networks = [int(vni) for vni in (network or {}).get("networks", [])]
    for vni in networks:
        if network_records.read(store, vni) is None:
            raise NotFound(f"network {vni} does not exist (network template '{network['name']}')")
    found = Plan(
        name, profile, system, disks, networks, (network or {}).get("mac_template"),
        None if script is None else (script["name"], script["text"]),
        {**(record.get("arguments") or {}), **arguments},
    )  # fmt: skip
    if found.mac_template and networks:
        found.template_macs = provision_xml.template_macs(found.mac_template, name, len(networks))
        nics = [provision_xml.Nic(vni, mac) for vni, mac in zip(networks, found.template_macs,
                                                                strict=True)]  # fmt: skip
        provision_xml.require_free_macs(store, nics)
    return found


def _disk(
    vm: str,
    pool: str,
    disk_id: str,
    size: int | None,
    source: str | None,
    template: dict[str, Any] | None = None,
) -> dict[str, Any]:
    template = template or {}
    return {
        "disk_id": disk_id,
        "pool": pool,
        "volume": f"{vm}_{disk_id}",
        "size": int(size or 0),
        "filesystem": template.get("filesystem"),
        "filesystem_args": list(template.get("filesystem_args") or []),
        "mountpoint": template.get("mountpoint"),
        "source_volume": source,
    }


def _check_disk(store: Store, disk: dict[str, Any]) -> None:
    pool, volume = disk["pool"], disk["volume"]
    storage_ceph.require_pool(store, pool)
    user_input.require_name(volume, f"volume name (disk {disk['disk_id']})")
    if disk["source_volume"]:
        storage_ceph.require_volume(store, pool, disk["source_volume"])
    elif disk["size"] <= 0:
        raise InvalidInput(f"disk {disk['disk_id']} has neither a size nor a source volume")
    storage_ceph.require_no_volume(store, pool, volume)
