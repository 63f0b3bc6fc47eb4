"""The DHCP controller's lease write-back is fenced by the primary's name (pvc.node.dhcp), on a
real Zookeeper with a real primary lease: an old primary that froze right after its lease
check and thawed after a takeover (its lease still looks valid to it for that moment) must
not overwrite or delete the new primary's leases. No node daemons: the takeover is written as
a daemon would, and the lease file as dnsmasq would."""

import types

import pytest

from pvc import config as pvc_config
from pvc.drivers import dnsmasq
from pvc.node.dhcp import Dhcp
from pvc.node.lease import PrimaryLease
from pvc.node.watchdog_process import WatchdogProcess
from pvc.ops import cluster, network_records
from pvc.zk import schema
from pvc.zk.cache import CachedView, open_mirror
from tests.integration.test_node_ops import add_node
from tests.primary_network_rig import network, write_network

MAC = "52:54:00:24:15:01"
NEW_PRIMARYS = {"ip": "10.100.0.150", "hostname": "vm", "expiry": 4000000000, "client_id": None}


@pytest.fixture
def dhcp(zk, tmp_path):
    cluster.initialize(zk)
    for name in ("node1", "node2"):
        add_node(zk, name)
    zk.write({"base.config.primary_node": "node1"})
    write_network(zk, network(100))
    config = pvc_config.from_dict(
        {
            "node": {"name": "node1"},
            "cluster": {"coordinators": ["node1", "node2"]},
            "networks": {"run_directory": str(tmp_path)},
            "api": {"authentication": {"enabled": False}},
        }
    )
    watchdog = WatchdogProcess()
    lease = PrimaryLease(zk, watchdog)
    assert lease.grant()
    yield Dhcp(CachedView(zk, open_mirror(zk)), config, lease)
    lease.close()
    watchdog.close()


def lease_file_with(dhcp: Dhcp, ip: str) -> types.SimpleNamespace:
    """What `_sync_leases` reads of a running dnsmasq: its paths (a lease file giving MAC `ip`)
    and the stamp of the lease file it read last."""
    paths = dnsmasq.Paths.of(dhcp.run_directory, "100")
    paths.folder.mkdir(parents=True)
    record = {"ip": ip, "hostname": "vm", "expiry": 4000000000}
    dnsmasq.write_file(paths.leases, dnsmasq.lease_file({MAC: record}))
    return types.SimpleNamespace(paths=paths, stamp=None)


def test_a_thawed_old_primary_leaves_the_new_primarys_leases_alone(zk, dhcp):
    zk.write({("network.lease", "100", schema.mac_component(MAC)): NEW_PRIMARYS})
    zk.write({"base.config.primary_node": "node2"})  # node2 took over while node1 was frozen
    assert dhcp.lease.valid()  # node1 thawed: its lease check still passes, for a moment
    dhcp._sync_leases(100, lease_file_with(dhcp, "10.100.0.101"))
    assert network_records.leases(zk, 100)[MAC]["ip"] == "10.100.0.150"


def test_the_primary_records_its_leases(zk, dhcp):
    dhcp._sync_leases(100, lease_file_with(dhcp, "10.100.0.101"))
    assert network_records.leases(zk, 100)[MAC]["ip"] == "10.100.0.101"
