"""Template verbs: the system, network and storage templates a profile builds a VM from.

A system template holds a VM's CPU, memory, consoles and placement; a network template its
NICs (the networks by VNI, in NIC order, and how their MAC addresses are made); a storage
template its disks (vda first: the order of the virtio targets). Every field is checked as
pvc.ops.provisioner_template_checks says, before anything is read. Each change is one write
of the whole record through pvc.ops.provisioner_store, guarded by the version it was read at:
two changes at once never lose one (the second is refused, 409) and a refusal writes nothing.
A template a profile uses cannot be removed (the refusal names the profiles); its contents may
change, and the next VM created from the profile gets the new ones.
"""

from typing import Any

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import provisioner_store as records
from pvc.ops import provisioner_template_checks as checks
from pvc.ops.network_checks import require_vni
from pvc.ops.user_input import quoted
from pvc.zk.store import Store

KINDS = ("system", "network", "storage")
# A create's NIC addresses (pvc.ops.provision): a network template's MAC template, for the VM
# whose name ends in vm_number(name), and each NIC's index.
mac_from_template = checks.mac_from_template
vm_number = checks.vm_number
# A new system template's settings where none are given.
SYSTEM_DEFAULTS = {
    "serial": False,
    "vnc": False,
    "vnc_bind": None,
    "node_limit": [],
    "node_selector": None,
    "node_autostart": False,
    "migration_method": "live",
}


def _require_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"unknown template kind {quoted(kind)} (use {', '.join(KINDS)})")
    return kind


def list_templates(store: Store, kind: str, limit: str | None = None) -> list[dict[str, Any]]:
    """The templates of one kind, by name; `limit` keeps the names containing it."""
    return records.list_records(store, _require_kind(kind), limit)


def list_all(store: Store, limit: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every template, by kind."""
    return {kind: list_templates(store, kind, limit) for kind in KINDS}


def info(store: Store, kind: str, name: str) -> dict[str, Any]:
    """One template, and the profiles that use it."""
    record = records.read(store, _require_kind(kind), name)
    return record | {"profiles": records.users(store, kind, name)}


def remove(store: Store, kind: str, name: str) -> dict[str, Any]:
    """Removes a template no profile uses."""
    return records.remove(store, _require_kind(kind), name)


def _changed(store: Store, kind: str, name: str, record: dict[str, Any], version: int,
             message: str) -> dict[str, Any]:  # fmt: skip
    return records.replace(store, kind, name, record, version) | {"message": message}


# --- system templates --------------------------------------------------------------------


def add_system(store: Store, name: str, vcpus: int, memory: int, **settings: Any) -> dict[str, Any]:
    """Adds a system template: `vcpus`, `memory` (MiB), and the SYSTEM_DEFAULTS settings
    given (None: the default)."""
    given = {field: value for field, value in settings.items() if value is not None}
    _require_fields(given)
    record = checks.system_record(SYSTEM_DEFAULTS | given | {"vcpus": vcpus, "memory": memory})
    return records.add(store, "system", name, record)


def modify_system(store: Store, name: str, **settings: Any) -> dict[str, Any]:
    """Changes the settings given (None: unchanged; '' clears vnc_bind and node_selector,
    [] the node limit)."""
    given = {field: value for field, value in settings.items() if value is not None}
    _require_fields(given)
    if not given:
        raise InvalidInput(f"nothing to change: give one of {', '.join(checks.SYSTEM_FIELDS)}")
    changes = {field: checks.SYSTEM_FIELDS[field](value) for field, value in given.items()}
    record, version = records.read_versioned(store, "system", name)
    return records.replace(store, "system", name, record | changes, version)


def _require_fields(given: dict[str, Any]) -> None:
    unknown = sorted(set(given) - set(checks.SYSTEM_FIELDS))
    if unknown:
        raise InvalidInput(f"a system template has no setting {quoted(unknown[0])}")


# --- network templates -------------------------------------------------------------------


def add_network(
    store: Store, name: str, mac_template: str | None = None, networks: list[Any] | None = None
) -> dict[str, Any]:
    """Adds a network template: its MAC template (None: random addresses) and its networks
    by VNI, in NIC order."""
    template = checks.require_mac_template(mac_template)
    vnis = checks.require_vnis(networks or [])
    if len(vnis) > 1 and checks.gives_one_mac(template):
        raise InvalidInput(_one_mac(template))
    return records.add(store, "network", name, {"mac_template": template, "networks": vnis})


def _one_mac(template: str | None) -> str:
    return (
        f"MAC template {quoted(template)} has no {{netid}}: a VM's NICs would all get one MAC "
        "address, so it takes one network only"
    )


def add_network_vni(store: Store, name: str, vni: Any) -> dict[str, Any]:
    """Adds a network (by VNI) as the template's last NIC."""
    vni = require_vni(vni)
    record, version = records.read_versioned(store, "network", name)
    label = records.label("network", name)
    if vni in record["networks"]:
        raise Conflict(f"network {vni} is in {label} already: a VM has one NIC per network")
    if len(record["networks"]) >= checks.NETWORKS_MAX:
        raise Conflict(f"{label} has {checks.NETWORKS_MAX} networks, the most it may have")
    if record["networks"] and checks.gives_one_mac(record["mac_template"]):
        raise Conflict(_one_mac(record["mac_template"]))
    networks = [*record["networks"], vni]
    message = f"network {vni} added to {label} (NIC {len(networks)})"
    return _changed(store, "network", name, record | {"networks": networks}, version, message)


def remove_network_vni(store: Store, name: str, vni: Any) -> dict[str, Any]:
    """Removes a network from the template (the NICs after it move up one)."""
    record, version = records.read_versioned(store, "network", name)
    label = records.label("network", name)
    text = str(vni)
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None
    if number not in record["networks"]:
        raise NotFound(f"network {text[:40]} is not in {label}")
    networks = [other for other in record["networks"] if other != number]
    message = f"network {number} removed from {label}"
    return _changed(store, "network", name, record | {"networks": networks}, version, message)


def networks_of(store: Store, name: str) -> list[dict[str, Any]]:
    """The template's networks in NIC order: [{"vni": ...}, ...]."""
    return [{"vni": vni} for vni in records.read(store, "network", name)["networks"]]


# --- storage templates -------------------------------------------------------------------


def add_storage(store: Store, name: str) -> dict[str, Any]:
    """Adds an empty storage template (add_disk adds its disks)."""
    return records.add(store, "storage", name, {"disks": []})


def add_disk(store: Store, name: str, disk_id: str, pool: str, **disk: Any) -> dict[str, Any]:
    """Adds a disk: `pool` and `size` (a size with a unit) or `source_volume` (a volume of
    `pool` to clone), optionally `filesystem`, `filesystem_args` and `mountpoint`."""
    new = checks.disk_record(disk_id, pool, **disk)
    record, version = records.read_versioned(store, "storage", name)
    label = records.label("storage", name)
    for other in record["disks"]:
        if other["disk_id"] == new["disk_id"]:
            raise Conflict(f"{label} has a disk {new['disk_id']} already")
        if new["mountpoint"] is not None and other["mountpoint"] == new["mountpoint"]:
            raise Conflict(f"{label} mounts disk {other['disk_id']} at {new['mountpoint']} already")
    disks = sorted([*record["disks"], new], key=lambda each: each["disk_id"])
    message = f"disk {new['disk_id']} added to {label}"
    return _changed(store, "storage", name, record | {"disks": disks}, version, message)


def remove_disk(store: Store, name: str, disk_id: str) -> dict[str, Any]:
    """Removes a disk (any text that is no disk of the template: 404)."""
    record, version = records.read_versioned(store, "storage", name)
    label = records.label("storage", name)
    disks = [disk for disk in record["disks"] if disk["disk_id"] != disk_id]
    if len(disks) == len(record["disks"]):
        raise NotFound(f"{label} has no disk {quoted(disk_id)}")
    message = f"disk {disk_id} removed from {label}"
    return _changed(store, "storage", name, record | {"disks": disks}, version, message)


def disks_of(store: Store, name: str) -> list[dict[str, Any]]:
    """The template's disks, vda first."""
    return records.read(store, "storage", name)["disks"]
