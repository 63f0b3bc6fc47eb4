"""The libvirt domain XML of a provisioned VM, and the MACs of its NICs.

The XML is what pvc writes elsewhere (tests/libvirt_nodes.py, the RBD disks of
pvc.ops.rbd_disks): a bare `<source protocol='rbd' name='pool/volume'/>` per disk (the node
starting the VM adds the monitors and the cluster's secret), virtio disks and NICs, the first
disk the boot device, a serial console on a pty logged to a file (what `pvc vm log` reads)
when the system template asks for one, and VNC when it asks for that. Text is escaped (names
follow the name rule, but the VNC address and paths come from records and configuration).

MACs: from the network template's mac_template (pvc.ops.provisioner_templates), else random
in QEMU's 52:54:00 range. A MAC another VM's NIC has, a DHCP reservation on the NIC's network
holds, or two NICs share is refused (the firewall tells a tap by its MAC; two guests with one
MAC break both).
"""

import random
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pvc.errors import Conflict, PvcError
from pvc.ops import domain_xml, network_records
from pvc.zk.store import Store

MAC_PREFIX = "52:54:00"


@dataclass(frozen=True)
class Disk:
    disk_id: str  # vda, vdb, ...
    pool: str
    volume: str


@dataclass(frozen=True)
class Nic:
    vni: int
    mac: str

    @property
    def bridge(self) -> str:
        return f"vmbr{self.vni}"


def build(
    *,
    name: str,
    uuid: str,
    vcpus: int,
    memory: int,
    disks: list[Disk],
    nics: list[Nic],
    system: dict[str, Any],
    domain_type: str,
    console_log: str,
    description: str,
) -> str:
    """The domain XML; `memory` in MiB, `system` the system template's record (serial, vnc,
    vnc_bind), `console_log` the file the serial console is logged to."""
    devices = []
    for index, disk in enumerate(disks):
        boot = "<boot order='1'/>" if index == 0 else ""
        devices.append(
            "<disk type='network' device='disk'>"
            "<driver name='qemu' type='raw' cache='writeback' discard='unmap'/>"
            f"<source protocol='rbd' name={quoteattr(f'{disk.pool}/{disk.volume}')}/>"
            f"<target dev={quoteattr(disk.disk_id)} bus='virtio'/>{boot}</disk>"
        )
    for nic in nics:
        devices.append(
            f"<interface type='bridge'><mac address={quoteattr(nic.mac)}/>"
            f"<source bridge={quoteattr(nic.bridge)}/><model type='virtio'/></interface>"
        )
    if system.get("serial"):
        devices.append(
            f"<serial type='pty'><log file={quoteattr(console_log)} append='on'/>"
            "<target port='0'/></serial>"
            "<console type='pty'><target type='serial' port='0'/></console>"
        )
    if system.get("vnc"):
        listen = f" listen={quoteattr(system['vnc_bind'])}" if system.get("vnc_bind") else ""
        devices.append(f"<graphics type='vnc' port='-1' autoport='yes'{listen}/>")
        devices.append("<video><model type='vga'/></video>")
    joined = "\n    ".join(devices)
    return f"""<domain type={quoteattr(domain_type)}>
  <name>{escape(name)}</name>
  <uuid>{escape(uuid)}</uuid>
  <description>{escape(description)}</description>
  <memory unit='MiB'>{int(memory)}</memory>
  <vcpu>{int(vcpus)}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/><apic/></features>
  <clock offset='utc'/>
  <devices>
    {joined}
  </devices>
</domain>
"""


# --- MACs -------------------------------------------------------------------------------------


def template_macs(mac_template: str, name: str, count: int) -> list[str]:
    """The MACs of `count` NICs from the template ({vmid}: the number ending the VM's name,
    {netid}: the NIC's index, from 0)."""
    from pvc.ops.provisioner_templates import mac_from_template, vm_number

    return [mac_from_template(mac_template, vm_number(name), netid) for netid in range(count)]


def random_mac(taken: set[str]) -> str:
    while True:
        mac = MAC_PREFIX + "".join(f":{random.randrange(256):02x}" for _ in range(3))
        if mac not in taken:
            return mac


def macs_in_use(store: Store, skip_uuid: str | None = None) -> dict[str, str]:
    """MAC -> the VM whose NIC has it, for every VM (but `skip_uuid`)."""
    used = {}
    for uuid in store.children("base.domains"):
        if uuid == skip_uuid:
            continue
        name, xml = store.read_many([("domain", uuid), ("domain.xml", uuid)])
        try:
            nics = domain_xml.interfaces(xml) if xml else []
        except PvcError:  # an XML pvc cannot read has no MAC pvc can compare
            continue
        used |= {nic.mac: name or uuid for nic in nics if nic.mac}
    return used


def require_free_macs(store: Store, nics: list[Nic], skip_uuid: str | None = None) -> None:
    """Refuses (409) MACs that two of `nics` share, another VM has, or a DHCP reservation on
    the NIC's network holds."""
    seen: set[str] = set()
    for nic in nics:
        if nic.mac in seen:
            raise Conflict(f"MAC {nic.mac} is given to two NICs (check the MAC template)")
        seen.add(nic.mac)
    used = macs_in_use(store, skip_uuid)
    for nic in nics:
        if nic.mac in used:
            raise Conflict(f"MAC {nic.mac} is used already by VM '{used[nic.mac]}'")
        reserved = network_records.reservations(store, nic.vni).get(nic.mac)
        if reserved is not None:
            raise Conflict(
                f"MAC {nic.mac} has a DHCP reservation on network {nic.vni} "
                f"({reserved.get('ip')}) already"
            )
