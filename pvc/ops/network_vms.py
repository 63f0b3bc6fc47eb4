"""Which VMs are on which networks: read from each VM's domain XML (a NIC whose source bridge
is `vmbr<vni>`), so `vm define` refuses a network that does not exist, `vm info` shows each
NIC's network and address, and `network remove` is refused while a VM uses the network.

A bridge named `vmbr<N>` is pvc's network N when N is a VNI written without leading zeros;
other bridges (`vmbr0`, `br-lan`) are the host's own, and pvc leaves them alone.

A define expects the versions of the networks it uses, so a network removed before the VM is
written fails the define. Not closed: a define written between a removal's check of the VMs
and its write (a few milliseconds under `lock.networks`, which defines do not take).
"""

from typing import Any

from pvc.errors import InvalidInput, NotFound, PvcError
from pvc.ops import domain_xml, network_records
from pvc.zk.store import Store

PREFIX = "vmbr"


def bridge_vni(bridge: str | None) -> int | None:
    """The VNI of a pvc network's bridge name, or None for any other bridge."""
    if not bridge or not bridge.startswith(PREFIX):
        return None
    digits = bridge[len(PREFIX) :]
    if not (digits.isascii() and digits.isdigit()) or digits != str(int(digits)):
        return None
    return int(digits) if 1 <= int(digits) <= network_records.VNI_MAX else None


def vnis_of(xml: str | None) -> set[int]:
    """The networks the domain XML's NICs are on."""
    if not xml:
        return set()
    try:
        nics = domain_xml.interfaces(xml)
    except PvcError:
        return set()
    return {vni for nic in nics if (vni := bridge_vni(nic.bridge)) is not None}


def unbuilt(store: Store, node: str, xml: str | None) -> tuple[list[int], list[str]]:
    """The VM's networks that `node` has not built yet (it reports no state for them), and
    why those it failed to build failed there: a VM starts only where its networks are."""
    waiting, failed = [], []
    for vni in sorted(vnis_of(xml)):
        state = store.read(("network.node", str(vni), node))
        if not isinstance(state, dict):
            waiting.append(vni)
        elif state.get("state") != "ok":
            failed.append(f"network {vni} failed on {node}: {state.get('detail') or 'no detail'}")
    return waiting, failed


def users(store: Store, vni: int) -> list[str]:
    """The names of the VMs with a NIC on network `vni`, sorted."""
    found = []
    for uuid in store.children("base.domains"):
        if vni in vnis_of(store.read(("domain.xml", uuid))):
            found.append(store.read(("domain", uuid)) or uuid)
    return sorted(found)


def require_networks(store: Store, xml: str) -> dict[Any, int]:
    """Refuses (404) a domain with a NIC on a network that does not exist, and (400) one on
    a network's bridge without a MAC (libvirt would pick one pvc never sees: each node's
    firewall allows a tap only its VM's MAC from the XML, and drops a tap it cannot tell);
    returns the versions of the networks it uses, for the write to expect (a network removed
    meanwhile fails the write)."""
    for nic in domain_xml.interfaces(xml):
        if bridge_vni(nic.bridge) is not None and not nic.mac:
            raise InvalidInput(
                f"the NIC on {nic.bridge} has no <mac address=...>: "
                "a NIC on a pvc network needs its MAC in the XML"
            )
    expect = {}
    for vni in sorted(vnis_of(xml)):
        version = store.read_versioned(("network", str(vni)))[1]
        if version < 0 or network_records.read(store, vni) is None:
            raise NotFound(f"network {vni} does not exist (the VM has a NIC on vmbr{vni})")
        expect[("network", str(vni))] = version
    return expect


def nics(store: Store, xml: str | None) -> list[dict[str, Any]]:
    """The domain's NICs: MAC, bridge, network (VNI, None if not pvc's) and the address its
    reservation or lease gives the MAC there."""
    try:
        found = domain_xml.interfaces(xml) if xml else []
    except PvcError:
        return []
    addresses: dict[int, dict[str, str]] = {}
    answer = []
    for nic in found:
        vni = bridge_vni(nic.bridge)
        ip = None
        if vni is not None and nic.mac:
            if vni not in addresses:
                addresses[vni] = _addresses(store, vni)
            ip = addresses[vni].get(nic.mac)
        answer.append({"mac": nic.mac, "bridge": nic.bridge, "vni": vni, "lease_ip": ip})
    return answer


def _addresses(store: Store, vni: int) -> dict[str, str]:
    """MAC -> address on network `vni`: its lease, or its reservation (which wins)."""
    found = {mac: lease.get("ip") for mac, lease in network_records.leases(store, vni).items()}
    for mac, reservation in network_records.reservations(store, vni).items():
        found[mac] = reservation.get("ip")
    return {mac: ip for mac, ip in found.items() if isinstance(ip, str)}
