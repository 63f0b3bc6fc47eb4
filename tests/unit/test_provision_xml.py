"""The provisioned VM's XML (pvc.ops.provision_xml.build) is a domain pvc and libvirt accept,
with what the system template asks for; script arguments."""

import uuid as uuid_module

from pvc.ops import domain_xml, provision_xml, rbd_disks

SYSTEM = {"serial": True, "vnc": True, "vnc_bind": "0.0.0.0"}


def built(system: dict, disks: int = 2, nics: int = 1) -> tuple[str, str]:
    uuid = str(uuid_module.uuid4())
    xml = provision_xml.build(
        name="web1", uuid=uuid, vcpus=2, memory=512,
        disks=[provision_xml.Disk(f"vd{'ab'[i]}", "vms", f"web1_vd{'ab'[i]}")
               for i in range(disks)],
        nics=[provision_xml.Nic(100 + i, f"52:54:00:00:00:0{i}") for i in range(nics)],
        system=system, domain_type="kvm", console_log="/var/log/c <&> x.log",
        description="from profile p & q",
    )  # fmt: skip
    return uuid, xml


def test_the_xml_is_a_checked_domain_with_rbd_disks_nics_serial_and_vnc():
    uuid, xml = built(SYSTEM)
    spec = domain_xml.checked(xml)
    assert (spec.name, spec.uuid, spec.memory, spec.vcpus) == ("web1", uuid, 512, 2)
    assert spec.volumes == ("vms/web1_vda", "vms/web1_vdb")
    assert [(n.mac, n.bridge) for n in domain_xml.interfaces(xml)] == [
        ("52:54:00:00:00:00", "vmbr100")
    ]
    assert xml.count("<boot order='1'/>") == 1 and "<serial type='pty'>" in xml
    assert "<graphics type='vnc'" in xml and 'listen="0.0.0.0"' in xml
    assert "/var/log/c &lt;&amp;&gt; x.log" in xml
    completed = rbd_disks.completed(xml, [("10.0.0.1", 6789)], "admin", "secret-uuid")
    assert completed.count('<auth username="admin">') == 2


def test_without_serial_or_vnc_the_xml_has_neither():
    _, xml = built({"serial": False, "vnc": False, "vnc_bind": None}, disks=0, nics=0)
    domain_xml.checked(xml)
    assert "<serial" not in xml and "<graphics" not in xml and "<disk" not in xml
