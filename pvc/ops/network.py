"""Network verbs: add, modify, remove, describe and list client networks.

Each verb checks its input (pvc.ops.network_checks), then takes `lock.networks` (so subnet,
domain, VLAN and VNI checks across networks cannot race another change), catches the store up,
checks against the current networks, and writes everything in ONE transaction guarded by the
versions it read. Every change writes the network's own key (its description), so a verb
that raced another is refused whole (ConcurrentChange) instead of mixing the two.
Removing a network takes its reservations, leases and ACLs with it, and is refused while a
VM has a NIC on its bridge. Reservations are in pvc.ops.network_dhcp, ACLs in
pvc.ops.network_acl; the node daemons build what these records describe.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import network_checks, network_records, network_vms
from pvc.ops.cluster import require_initialized
from pvc.ops.network_records import Network
from pvc.zk.locks import exclusive_lock
from pvc.zk.store import Store

LOCK_TIMEOUT = 10.0  # seconds: network changes are quick, a longer wait means trouble


@contextmanager
def networks_lock(store: Store) -> Iterator[None]:
    """Holds `lock.networks` with the store caught up, so what a verb checks under it still
    holds when it writes."""
    with exclusive_lock(store, "lock.networks", LOCK_TIMEOUT):
        store.catch_up()
        yield


def require(store: Store, vni: Any) -> Network:
    """The network with VNI `vni` (a number or its text); NotFound otherwise."""
    text = str(vni)
    number = int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None
    found = network_records.read(store, number) if number else None
    if found is None and number:
        store.catch_up()
        found = network_records.read(store, number)
    if found is None:
        raise NotFound(f"network {text[:40]} does not exist")
    return found


def add(store: Store, vni: Any, **given: Any) -> dict[str, Any]:
    """Adds a network; `given` holds its settings by their API names (network_checks.FIELDS)."""
    number = network_checks.require_vni(vni)
    network = network_checks.built(None, number, given)
    require_initialized(store)
    with networks_lock(store):
        if store.exists(("network", str(number))):
            raise Conflict(f"network {number} exists already")
        network_checks.require_fits(network, network_records.networks(store))
        store.write(network_records.values(network), expect={("network", str(number)): -1})
    return {"message": f"network {number} added ({network.type})", "network": network.as_dict()}


def modify(store: Store, vni: Any, **given: Any) -> dict[str, Any]:
    """Changes the settings given (None: unchanged; "" clears a text, 0 the MTU or VLAN)."""
    if all(value is None for value in given.values()):
        raise InvalidInput("nothing to change: give at least one setting")
    require(store, vni)
    with networks_lock(store):
        old = require(store, vni)
        version = store.read_versioned(("network", str(old.vni)))[1]
        network = network_checks.built(old, old.vni, given)
        network_checks.require_fits(network, network_records.networks(store))
        _require_reservations_fit(store, network)
        store.write(network_records.values(network), expect={("network", str(old.vni)): version})
    return {"message": f"network {old.vni} modified", "network": network.as_dict()}


def _require_reservations_fit(store: Store, network: Network) -> None:
    """Refuses a change of subnet or gateway that a reservation would not survive."""
    for mac, reservation in network_records.reservations(store, network.vni).items():
        ip = reservation.get("ip")
        if ip and (
            network.ip4_network is None or not network_checks.inside(ip, network.ip4_network)
        ):
            raise Conflict(
                f"the reservation of {mac} ({ip}) would be outside the network: remove it first"
            )
        if ip and ip == network.ip4_gateway:
            raise Conflict(f"the gateway {ip} is reserved for {mac}: remove the reservation first")


def remove(store: Store, vni: Any) -> dict[str, Any]:
    """Removes a network with its reservations, leases and ACLs; refused (409) while a VM has
    a NIC on it."""
    require(store, vni)
    with networks_lock(store):
        network = require(store, vni)
        key = ("network", str(network.vni))
        version = store.read_versioned(key)[1]
        using = network_vms.users(store, network.vni)
        if using:
            raise Conflict(
                f"network {network.vni} is in use by VM(s) {', '.join(using)}: "
                f"remove their NICs on {network.bridge} first"
            )
        store.write({}, delete=[key], expect={key: version})
    return {"message": f"network {network.vni} removed"}


def info(store: Store, vni: Any) -> dict[str, Any]:
    require_initialized(store)
    return require(store, vni).as_dict()


def list_networks(store: Store, limit: str | None = None) -> list[dict[str, Any]]:
    """Every network by VNI; `limit` keeps those whose VNI or description contains it."""
    require_initialized(store)
    needle = (limit or "").lower()
    return [
        network.as_dict()
        for network in network_records.networks(store)
        if needle in str(network.vni) or needle in network.description.lower()
    ]
