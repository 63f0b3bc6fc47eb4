"""pvc.drivers.libvirt_schema against the real libvirt (its test driver, in process): it refuses
what libvirt's schema and parser refuse, and passes the domains pvc runs."""

from pathlib import Path

import pytest

from pvc.drivers import libvirt_schema
from tests.api_rig import vm_xml
from tests.integration.test_vm_ops import domain_xml
from tests.libvirt_nodes import Guest, firmware_domain_xml, linux_domain_xml

UUID = "6a2f1e5c-7f5e-4f0b-9d62-0b4c6f1d2e3a"
# A production-like KVM guest: Ceph RBD disk with cephx auth, a bridge NIC, VNC, serial log.
KVM_XML = f"""<domain type='kvm'>
  <name>web1</name>
  <uuid>{UUID}</uuid>
  <description>pvc test guest</description>
  <memory unit='GiB'>4</memory><currentMemory unit='GiB'>4</currentMemory>
  <vcpu placement='static'>4</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <cpu mode='host-passthrough'/>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>restart</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='writeback' discard='unmap'/>
      <auth username='libvirt'>
        <secret type='ceph' uuid='a9b3f1d4-0000-4000-8000-000000000001'/>
      </auth>
      <source protocol='rbd' name='vms/web1_disk0'>
        <host name='10.0.0.1' port='6789'/><host name='10.0.0.2' port='6789'/>
      </source>
      <target dev='sda' bus='scsi'/>
    </disk>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <interface type='bridge'>
      <mac address='52:54:00:12:34:56'/><source bridge='vmbr100'/><model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='/var/log/pvc/console/web1.log' append='on'/><target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/>
    <video><model type='virtio'/></video>
    <memballoon model='virtio'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
</domain>"""
TWIN_DISK = "<disk type='file'><source file='/srv/twin.img'/><target dev='sda' bus='scsi'/></disk>"
GUEST = Guest(Path("/var/lib/pvc/guest/vmlinuz"), Path("/var/lib/pvc/guest/initrd"))


@pytest.mark.parametrize(
    "xml",
    [
        KVM_XML,
        KVM_XML.replace("<name>web1</name>", "<name>test</name>"),  # the default driver's own
        domain_xml("vm1", UUID),
        vm_xml("vm1", UUID),
        linux_domain_xml("vm1", UUID, GUEST, Path("/tmp/console.log"), nic="vmbr0"),
        firmware_domain_xml("vm1", UUID, nic="user"),
    ],
)
def test_the_domains_pvc_runs_pass(xml):
    assert libvirt_schema.refusal(xml) is None
    assert libvirt_schema.refusal(xml) is None  # and again: nothing stays defined


@pytest.mark.parametrize(
    "xml, reason",
    [
        (domain_xml("vm1", UUID).replace(">128<", ">١٢٨<"), "Type unsignedLong doesn't allow"),
        (domain_xml("vm1", "{" + UUID + "}"), "Extra element uuid"),
        (KVM_XML.replace("52:54:00", "zz:54:00"), "failed to validate against schema"),
        (domain_xml("vm1", UUID).replace("<os><type>hvm</type></os>", ""), "an os <type>"),
        (KVM_XML.replace("<controller", TWIN_DISK + "<controller"), "target 'sda' duplicated"),
    ],
)
def test_what_libvirt_refuses_is_refused_with_its_reason(xml, reason):
    assert reason in libvirt_schema.refusal(xml)
