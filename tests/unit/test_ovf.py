"""pvc.ops.ovf: the hardware and disks of OVF 1.x and 2.x descriptors, and a clear refusal of
each thing missing, inconsistent or hostile."""

import pytest

from pvc.errors import InvalidInput
from pvc.ops import ovf
from tests.ova_files import MIB, VMDK, Hardware, OvaDisk, ovf_text

TWO_DISKS = [OvaDisk("a.vmdk", b"", 10 * MIB), OvaDisk("b.vmdk", b"", 3 * 1024 * MIB)]

OVF2 = """<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/2"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/2"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:sasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData"
  xmlns:epasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData">
 <References><ovf:File ovf:id="f1" ovf:href="root.qcow2" ovf:size="1234"/></References>
 <DiskSection><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="2147483648"
   ovf:format="http://www.qemu.org/qcow2"/></DiskSection>
 <VirtualSystemCollection><Info>x</Info></VirtualSystemCollection>
 <VirtualSystem ovf:id="web"><VirtualHardwareSection>
  <Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>
  <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>
    <rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
  <StorageItem><sasd:HostResource>ovf:/disk/d1</sasd:HostResource>
    <sasd:ResourceType>17</sasd:ResourceType></StorageItem>
  <EthernetPortItem><epasd:ResourceType>10</epasd:ResourceType></EthernetPortItem>
  <EthernetPortItem><epasd:ResourceType>10</epasd:ResourceType></EthernetPortItem>
 </VirtualHardwareSection></VirtualSystem>
</Envelope>"""


def refused(text: str | bytes, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        ovf.parse(text.encode() if isinstance(text, str) else text)


def test_an_ovf_1_descriptor_gives_the_hardware_and_the_disks_in_order():
    hardware = Hardware(vcpus=3, memory_mib=1536, nics=2, disk_refs=["disk1", "disk0"])
    parsed = ovf.parse(ovf_text(TWO_DISKS, hardware).encode())
    assert (parsed.vcpus, parsed.memory, parsed.nics) == (3, 1536, 2)
    assert parsed.disks == [
        ovf.Disk("vda", "b.vmdk", 3 << 30, "vmdk"),
        ovf.Disk("vdb", "a.vmdk", 10 * MIB, "vmdk"),
    ]
    assert parsed.files == {"a.vmdk": None, "b.vmdk": None}
    assert parsed.summary()["system"] == "testvm"
    assert parsed.summary()["disks"][0] == {"disk_id": "vda", "file": "b.vmdk",
                                            "capacity": 3 << 30, "format": "vmdk"}  # fmt: skip


def test_an_ovf_2_descriptor_reads_the_same():
    parsed = ovf.parse(OVF2.encode())
    assert (parsed.name, parsed.vcpus, parsed.memory, parsed.nics) == ("web", 4, 2048, 2)
    assert parsed.disks == [ovf.Disk("vda", "root.qcow2", 2 << 30, "qcow2")]
    assert parsed.files == {"root.qcow2": 1234}


def test_entities_and_doctypes_are_refused_before_any_expansion():
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><Envelope>&lol2;</Envelope>')  # fmt: skip
    refused(laughs, "the OVF has a DOCTYPE")
    external = '<!DOCTYPE x SYSTEM "file:///etc/ceph/ceph.keyring"><Envelope/>'
    refused(external, "the OVF has a DOCTYPE")
    refused(b"<Envelope>" + b" " * ovf.OVF_MAX + b"</Envelope>", "at most 1048576 are taken")
    refused("<Envelope><unclosed></Envelope>", "not well-formed XML: mismatched tag")
    refused("<Other/>", "root element is 'Other', not Envelope")


def test_what_is_missing_or_inconsistent_is_named():
    good = ovf_text(TWO_DISKS)
    refused(good.replace("VirtualSystem", "Nothing"), "the OVF has no VirtualSystem")
    refused(good.replace("VirtualHardwareSection", "Hw"), "has no VirtualHardwareSection")
    refused(ovf_text(TWO_DISKS, Hardware(disk_refs=["disk0", "disk7"])),
            "names disk '/disk/disk7', which its DiskSection lacks")  # fmt: skip
    refused(ovf_text(TWO_DISKS, Hardware(disk_refs=["disk0", "disk0"])), "one disk twice")
    refused(good.replace('ovf:fileRef="file1"', 'ovf:fileRef="nofile"'),
            "disk 'disk1' names file 'nofile', which its References lack")  # fmt: skip
    refused(good.replace("<rasd:ResourceType>3<", "<rasd:ResourceType>99<"), "no CPU item")
    refused(good.replace("<rasd:VirtualQuantity>512<", "<rasd:VirtualQuantity>lots<"),
            "memory count is 'lots', not a whole number")  # fmt: skip
    refused(good.replace('="byte * 2^20" ovf:format', '="furlongs" ovf:format', 1),
            "units 'furlongs'")  # fmt: skip
    refused(good.replace(VMDK, "http://example.com/vhd", 1),
            "is of format 'http://example.com/vhd': only VMDK and qcow2")  # fmt: skip
    refused(good.replace('ovf:href="a.vmdk"', 'ovf:href="../../etc/passwd"'),
            "file '../../etc/passwd' is not a file of the OVA")  # fmt: skip
    refused(good.replace('ovf:href="a.vmdk"', 'ovf:href="a.vmdk" ovf:compression="gzip"'),
            "compressed or chunked")  # fmt: skip
    refused(good.replace("ovf:/disk/disk0", "/dev/sda"), "names '/dev/sda', not ovf:/disk/")


def test_sizes_and_counts_past_any_machine_are_refused_without_computing_them():
    """A unit of 10^3000000 would take the API process's CPU for hours (big integers hold the
    GIL); counts past the system templates' bounds would reach a create unchecked."""
    good = ovf_text(TWO_DISKS)
    huge = '="byte * 10^3000000" ovf:format'
    refused(good.replace('="byte * 2^20" ovf:format', huge, 1), r"units 'byte \* 10\^3000000'")
    refused(good.replace('="byte * 2^20" ovf:format', '="byte * 3^20" ovf:format', 1),
            r"units 'byte \* 3\^20'")  # fmt: skip
    refused(good.replace('="byte * 2^20" ovf:format', '="byte * 2^60" ovf:format', 1),
            "larger than Ceph can hold")  # fmt: skip
    refused(ovf_text(TWO_DISKS, Hardware(vcpus=100000)), "CPU count is 100000: at most 256")
    refused(ovf_text(TWO_DISKS, Hardware(memory_mib=1 << 30)), "memory is more than")
