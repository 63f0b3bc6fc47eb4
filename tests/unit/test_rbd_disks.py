"""pvc.ops.rbd_disks: the monitors read from a ceph.conf mon_host, the completion of a VM's RBD
disks (what the user wrote is kept), and the cluster's secret UUID."""

from pvc.ops import rbd_disks

DISK = "<disk type='network' device='disk'><source protocol='rbd' name='pool/vol'/>{}</disk>"
XML = "<domain><name>a</name><devices>{}</devices></domain>"
HOSTS = [("10.0.0.1", 6789), ("10.0.0.2", 6789)]


def test_monitor_hosts_of_each_mon_host_form():
    assert rbd_disks.monitor_hosts("[v2:10.0.0.1:3300/0,v1:10.0.0.1:6789/0]") == [
        ("10.0.0.1", 6789)
    ]
    both = "[v2:10.0.0.1:3300,v1:10.0.0.1:6789],[v2:10.0.0.2:3300,v1:10.0.0.2:6789]"
    assert rbd_disks.monitor_hosts(both) == HOSTS
    assert rbd_disks.monitor_hosts("[v2:10.0.0.3:3300]") == [("10.0.0.3", 3300)]
    assert rbd_disks.monitor_hosts("10.0.0.1, 10.0.0.2:6789") == HOSTS
    assert rbd_disks.monitor_hosts("") == []


def test_a_bare_rbd_disk_gets_the_monitors_and_the_auth():
    xml = rbd_disks.completed(XML.format(DISK.format("")), HOSTS, "admin", "s-uuid")
    assert '<host name="10.0.0.1" port="6789"/><host name="10.0.0.2" port="6789"/>' in xml
    assert '<auth username="admin"><secret type="ceph" uuid="s-uuid"/></auth><source' in xml


def test_what_the_user_wrote_is_kept():
    explicit = (
        DISK.format("")
        .replace("/>", "><host name='mon.example' port='3300'/></source>", 1)
        .replace("<source", "<auth username='vm'><secret type='ceph' usage='mine'/></auth><source")
    )
    xml = XML.format(explicit)
    assert rbd_disks.completed(xml, HOSTS, "admin", "s-uuid") == xml


def test_a_domain_without_rbd_disks_is_left_as_it_is():
    xml = XML.format("<disk type='file'><source file='/x'/></disk>")
    assert rbd_disks.completed(xml, HOSTS, "admin", "s-uuid") is xml


def test_the_secret_uuid_is_one_per_cluster():
    one = rbd_disks.secret_uuid("6a1e0f54-0000-4000-8000-000000000001")
    assert one == rbd_disks.secret_uuid("6a1e0f54-0000-4000-8000-000000000001")
    assert one != rbd_disks.secret_uuid("6a1e0f54-0000-4000-8000-000000000002")
