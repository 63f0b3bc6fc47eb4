"""Client networks' links on real node daemons in network namespaces (pvc.node.networks):
VXLANs and bridges on every node, FDB peers kept current, traffic across the VXLAN, restarts
that change nothing, teardown of exactly what pvc made, bridged networks on a device."""

import json
import subprocess
import time
import uuid as uuid_module

import pytest

from pvc.ops import network_records as records
from pvc.ops.network_records import Network
from tests.conftest import free_port
from tests.libvirt_nodes import firmware_domain_xml
from tests.local_cluster import LocalCluster, sh
from tests.primary_network_rig import wait_for as poll

WAIT = 45  # seconds: generous, for a loaded 2-core machine
OTHER_SUBNET_ADDRESS = "198.51.100.13"  # an administrator's, on node3's cluster device


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three nodes; node1 and node2 have an extra device eth1 (networks.bridge_device), node3
    has none: a bridged network fails there. node3's eth0 lists an address of another subnet
    first: its cluster address is still the one in the cluster floating address's subnet."""
    local = LocalCluster(tmp_path_factory.mktemp("netlinks"), 3, zk_port=free_port()).up()
    local.settings["networks"] = {
        "cluster": {"device": "eth0", "floating_ip": f"{local.floating}/24"},
        "bridge_device": "eth1",
    }
    for index, name in enumerate(local.names, start=1):
        ns = local.namespace(name)
        devices = ("eth1", "eth2") if index < 3 else ("eth2",)
        for device in devices:
            sh("ip", "-n", ns, "link", "add", device, "type", "veth", "peer", "name", f"{device}p")
            sh("ip", "-n", ns, "link", "set", device, "up")
        storage = {"device": "eth2", "address": f"{storage_address(local, name)}/24", "mtu": 9000}
        local.node_settings[name] = {"networks": {"storage": storage}}
    node3 = local.namespace("node3")
    sh("ip", "-n", node3, "addr", "flush", "dev", "eth0")
    for address in (OTHER_SUBNET_ADDRESS, node_address(local, "node3")):
        sh("ip", "-n", node3, "addr", "add", f"{address}/24", "dev", "eth0")
    for name in local.names:
        local.write_config(name)
    local.start_all()
    yield local
    for vm in ("vm1", "vm3"):
        subprocess.run(["ip", "netns", "del", local.namespace(vm)], capture_output=True)
    local.down()


@pytest.fixture(scope="module")
def zk(cluster):
    handler = cluster.observer()
    cluster.wait_for_primary(handler, WAIT)
    yield handler
    handler.close()


def wait_for(predicate, what: str = "condition"):
    """`predicate()` once true (polled; TimeoutError after WAIT s)."""
    return poll(what, predicate, WAIT, 0.2)


def links(cluster, node: str) -> dict[str, dict]:
    """ifname -> `ip -d link` details, in the node's namespace."""
    out = subprocess.run(
        ["ip", "-n", cluster.namespace(node), "-j", "-d", "link", "show"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {link["ifname"]: link for link in json.loads(out)}


def fdb_peers(cluster, node: str, vxlan: str) -> set[str]:
    out = subprocess.run(
        ["bridge", "-n", cluster.namespace(node), "-j", "fdb", "show", "dev", vxlan],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    return {e["dst"] for e in json.loads(out or "[]") if e.get("mac") == "00:00:00:00:00:00"}


def carrier_changes(cluster, node: str, name: str) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", cluster.namespace(node), "cat",
         f"/sys/class/net/{name}/carrier_changes"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out)


def sysctl(cluster, node: str, name: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", cluster.namespace(node), "sysctl", "-n", name],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def node_address(cluster, node: str) -> str:
    return f"{cluster.subnet}.{10 + cluster.names.index(node) + 1}"


def storage_address(cluster, node: str) -> str:
    return f"10.202.{cluster.subnet.rsplit('.', 1)[1]}.{10 + cluster.names.index(node) + 1}"


def states(zk, vni: int) -> dict[str, dict]:
    return {
        node: zk.read(("network.node", str(vni), node))
        for node in zk.children(("network.nodes", str(vni)))
    }


def wait_states(zk, cluster, vni: int, wanted: dict[str, str]) -> dict[str, dict]:
    def reached():
        found = states(zk, vni)
        ok = all((found.get(n) or {}).get("state") == s for n, s in wanted.items())
        return found if ok else None

    return wait_for(reached, what=f"network {vni} states {wanted}")


def managed(vni: int, mtu: int | None = None) -> Network:
    return Network(
        vni=vni,
        description=f"net{vni}",
        type=records.MANAGED,
        domain=f"net{vni}.test",
        mtu=mtu,
        ip4_network="10.100.0.0/24",
        ip4_gateway="10.100.0.1",
    )


def attach_vm(cluster, zk, node: str, vm: str, bridge: str, address: str) -> None:
    """A namespace standing for a VM defined on `node` (its NIC's MAC in its XML, as the
    node's firewall needs), its NIC's other end (`tap<vm>`, libvirt's tap MAC) a port of the
    bridge."""
    vm_ns, node_ns = cluster.namespace(vm), cluster.namespace(node)
    mac = f"52:54:00:00:10:{int(address.rsplit('.', 1)[1]):02x}"
    uuid = str(uuid_module.uuid5(uuid_module.NAMESPACE_DNS, vm))
    xml = firmware_domain_xml(vm, uuid, nic=bridge, mac=mac)
    zk.write({("domain", uuid): vm, ("domain.xml", uuid): xml, ("domain.node", uuid): node})
    subprocess.run(["ip", "netns", "del", vm_ns], capture_output=True)
    sh("ip", "netns", "add", vm_ns)
    sh("ip", "-n", node_ns, "link", "add", f"tap{vm}", "type", "veth", "peer", "name", "eth0",
       "netns", vm_ns)  # fmt: skip
    sh("ip", "-n", node_ns, "link", "set", f"tap{vm}", "address", "fe" + mac[2:])
    sh("ip", "-n", node_ns, "link", "set", f"tap{vm}", "master", bridge, "up")
    sh("ip", "-n", vm_ns, "link", "set", "eth0", "address", mac)
    sh("ip", "-n", vm_ns, "addr", "add", f"{address}/24", "dev", "eth0")
    sh("ip", "-n", vm_ns, "link", "set", "eth0", "up")


def ping(cluster, vm: str, address: str) -> bool:
    result = subprocess.run(
        ["ip", "netns", "exec", cluster.namespace(vm), "ping", "-c", "3", "-W", "5", address],
        capture_output=True,
    )  # fmt: skip
    return result.returncode == 0


def test_nodes_publish_their_cluster_addresses(cluster, zk):
    for node in cluster.names:
        address = wait_for(lambda n=node: zk.read(("node.cluster_address", n)))
        assert address == node_address(cluster, node)


def test_cluster_networks_get_their_configured_mtu_and_address(cluster, zk):
    for node in cluster.names:
        wait_for(lambda n=node: links(cluster, n)["eth2"]["mtu"] == 9000, what="storage MTU")
        out = subprocess.run(
            ["ip", "-n", cluster.namespace(node), "-o", "-4", "addr", "show", "dev", "eth2"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert f" {storage_address(cluster, node)}/24 " in out


def test_managed_network_is_built_on_every_node(cluster, zk):
    zk.write(records.values(managed(100)))
    zk.write(records.values(managed(101, mtu=1400)))
    found = wait_states(zk, cluster, 100, dict.fromkeys(cluster.names, "ok"))
    wait_states(zk, cluster, 101, dict.fromkeys(cluster.names, "ok"))
    assert found["node1"]["detail"] == "vxlan100 in vmbr100, MTU 1450"
    for node in cluster.names:
        present = links(cluster, node)
        bridge, vxlan = present["vmbr100"], present["vxlan100"]
        assert bridge["linkinfo"]["info_kind"] == "bridge" and bridge["mtu"] == 1450
        assert bridge["linkinfo"]["info_data"]["stp_state"] == 0
        assert bridge["linkinfo"]["info_data"]["forward_delay"] == 0
        assert vxlan["mtu"] == 1450 and vxlan["master"] == "vmbr100"
        data = vxlan["linkinfo"]["info_data"]
        assert (data["id"], data["local"], data["port"]) == (100, node_address(cluster, node), 4789)
        assert data["link"] == "eth0" and data["learning"] is True and "group" not in data
        assert bridge["ifalias"] == vxlan["ifalias"] == "pvc"
        assert sysctl(cluster, node, "net.ipv6.conf.vmbr100.autoconf") == "0"
        assert sysctl(cluster, node, "net.ipv6.conf.vmbr100.accept_ra") == "0"
        assert present["vmbr101"]["mtu"] == present["vxlan101"]["mtu"] == 1400
        peers = {node_address(cluster, n) for n in cluster.names if n != node}
        assert wait_for(lambda n=node, p=peers: fdb_peers(cluster, n, "vxlan100") == p or None)


def test_a_changed_mtu_changes_the_links_in_place(cluster, zk):
    before = {node: links(cluster, node)["vxlan101"]["ifindex"] for node in cluster.names}
    zk.write({("network.mtu", "101"): 1300})
    for node in cluster.names:
        wait_for(lambda n=node: links(cluster, n)["vmbr101"]["mtu"] == 1300, what="MTU 1300")
        assert links(cluster, node)["vxlan101"]["mtu"] == 1300
        assert links(cluster, node)["vxlan101"]["ifindex"] == before[node]


def test_vms_on_two_nodes_reach_each_other_across_the_vxlan(cluster, zk):
    wait_states(zk, cluster, 100, dict.fromkeys(cluster.names, "ok"))
    attach_vm(cluster, zk, "node1", "vm1", "vmbr100", "10.100.0.11")
    attach_vm(cluster, zk, "node3", "vm3", "vmbr100", "10.100.0.13")
    assert wait_for(lambda: ping(cluster, "vm1", "10.100.0.13"), "vm1 reaches vm3")
    assert ping(cluster, "vm3", "10.100.0.11")


def test_a_daemon_restart_changes_no_link(cluster, zk):
    names = ("vmbr100", "vxlan100", "tapvm1")
    before = {n: (links(cluster, "node1")[n]["ifindex"], carrier_changes(cluster, "node1", n))
              for n in names}  # fmt: skip
    fdb_before = fdb_peers(cluster, "node1", "vxlan100")
    cluster.stop("node1")
    assert set(names) <= set(links(cluster, "node1"))  # a stop leaves the links: VMs run on them
    assert ping(cluster, "vm1", "10.100.0.13")
    log = cluster.workdir / "node1" / "pvc.log"
    runs = log.read_text().count("node daemon running")
    cluster.start("node1")
    wait_for(lambda: log.read_text().count("node daemon running") > runs, what="node1 running")
    time.sleep(3 * cluster.keepalive_interval)  # its first resync has looked at every network
    after = {n: (links(cluster, "node1")[n]["ifindex"], carrier_changes(cluster, "node1", n))
             for n in names}  # fmt: skip
    assert after == before
    assert fdb_peers(cluster, "node1", "vxlan100") == fdb_before
    assert ping(cluster, "vm1", "10.100.0.13")


def test_peers_follow_a_nodes_cluster_address(cluster, zk):
    others = ("node1", "node2")
    old = node_address(cluster, "node3")
    cluster.stop("node3")
    moved = f"{cluster.subnet}.99"
    zk.write({("node.cluster_address", "node3"): moved})
    for node in others:
        wait_for(lambda n=node: moved in (p := fdb_peers(cluster, n, "vxlan100")) and old not in p,
                 what=f"{node} following node3's new address")  # fmt: skip
    zk.delete(("node.cluster_address", "node3"))  # node3 leaves: its entry goes
    for node in others:
        rest = {node_address(cluster, o) for o in others if o != node}
        wait_for(lambda n=node, r=rest: fdb_peers(cluster, n, "vxlan100") == r,
                 what=f"{node} without node3")  # fmt: skip
    cluster.start("node3")  # node3 comes (back): it publishes its address, the others add it
    for node in others:
        wait_for(lambda n=node: old in fdb_peers(cluster, n, "vxlan100"),
                 what=f"{node} adding node3 again")  # fmt: skip
    assert zk.read(("node.cluster_address", "node3")) == old
    wait_for(lambda: ping(cluster, "vm1", "10.100.0.13"), what="vm1 reaching vm3")


def test_removing_a_network_removes_exactly_what_pvc_made(cluster, zk):
    node1 = cluster.namespace("node1")
    sh("ip", "-n", node1, "link", "add", "vmbr1000", "type", "bridge")  # an administrator's
    sh("ip", "-n", cluster.namespace("node2"), "link", "add", "vmbr102", "type", "bridge")
    zk.write(records.values(managed(102)))
    found = wait_states(zk, cluster, 102, {"node1": "ok", "node2": "failed", "node3": "ok"})
    assert found["node2"]["detail"] == "vmbr102 exists on this node and was not made by pvc"
    assert "vxlan102" not in links(cluster, "node2")  # nothing half-built
    for vni in (100, 101, 102):
        zk.delete(("network", str(vni)))
    for node in cluster.names:
        wait_for(lambda n=node: not {"vmbr100", "vxlan100", "vmbr101", "vxlan101", "vxlan102"}
                 & set(links(cluster, n)), what=f"{node} without the networks")  # fmt: skip
    assert not {"vmbr102"} & set(links(cluster, "node1"))
    present = links(cluster, "node1")
    assert "vmbr1000" in present
    assert "tapvm1" in present and "master" not in present["tapvm1"]  # the VM's tap stays
    assert "vmbr102" in links(cluster, "node2")
    assert not zk.exists(("network", "102"))  # no state written behind the removal


def test_bridged_network_untagged_on_its_device_fails_where_the_device_is_missing(cluster, zk):
    network = Network(vni=200, description="untagged", type=records.BRIDGED)
    zk.write(records.values(network))
    found = wait_states(zk, cluster, 200, {"node1": "ok", "node2": "ok", "node3": "failed"})
    assert found["node3"]["detail"] == "device eth1 does not exist on this node"
    assert "vmbr200" not in links(cluster, "node3")
    for node in ("node1", "node2"):
        present = links(cluster, node)
        assert present["eth1"]["master"] == "vmbr200"
        assert present["vmbr200"]["mtu"] == present["eth1"]["mtu"]
    zk.delete(("network", "200"))
    for node in ("node1", "node2"):
        wait_for(lambda n=node: "vmbr200" not in links(cluster, n), what="vmbr200 gone")
        assert "eth1" in links(cluster, node)  # the device is the administrator's: it stays


def test_untagged_network_is_refused_on_a_device_carrying_an_address(cluster, zk):
    node2, address = cluster.namespace("node2"), "198.51.100.2/24"
    refused = (
        "device eth1 carries this node's addresses (198.51.100.2): an untagged network would "
        "take it from the node"
    )
    sh("ip", "-n", node2, "addr", "add", address, "dev", "eth1")
    zk.write(records.values(Network(vni=201, description="untagged", type=records.BRIDGED)))
    found = wait_states(zk, cluster, 201, {"node1": "ok", "node2": "failed", "node3": "failed"})
    assert found["node2"]["detail"] == refused
    assert (
        "vmbr201" not in links(cluster, "node2") and "master" not in links(cluster, "node2")["eth1"]
    )
    assert links(cluster, "node1")["eth1"]["master"] == "vmbr201"
    sh("ip", "-n", node2, "addr", "del", address, "dev", "eth1")
    zk.write({("network", "201"): "untagged, once more"})  # a change: every node steps again
    wait_states(zk, cluster, 201, {"node1": "ok", "node2": "ok"})
    assert links(cluster, "node2")["eth1"]["master"] == "vmbr201"
    sh("ip", "-n", node2, "addr", "add", address, "dev", "eth1")  # an address comes later
    zk.write({("network", "201"): "untagged, again"})
    found = wait_states(zk, cluster, 201, {"node1": "ok", "node2": "failed"})
    assert found["node2"]["detail"] == refused
    assert "master" not in links(cluster, "node2")["eth1"]  # it left the bridge
    sh("ip", "-n", node2, "addr", "del", address, "dev", "eth1")
    zk.delete(("network", "201"))
    for node in ("node1", "node2"):
        wait_for(lambda n=node: "vmbr201" not in links(cluster, n), what="vmbr201 gone")


def kernel_has_vlans() -> bool:
    probe = f"pvcvlanprobe{free_port()}"
    subprocess.run(["ip", "netns", "add", probe], check=True)
    try:
        result = subprocess.run(
            ["ip", "-n", probe, "link", "add", "link", "lo", "name", "v9", "type", "vlan",
             "id", "9"], capture_output=True,
        )  # fmt: skip
        return result.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe])


VLANS = kernel_has_vlans()


@pytest.mark.skipif(not VLANS, reason="this kernel lacks 802.1Q VLAN links (type vlan)")
def test_bridged_network_on_a_vlan(cluster, zk):
    zk.write(records.values(Network(vni=300, description="tagged", type=records.BRIDGED, vlan=30)))
    wait_states(zk, cluster, 300, {"node1": "ok", "node2": "ok", "node3": "failed"})
    for node in ("node1", "node2"):
        vlan = links(cluster, node)["vlan300"]
        assert vlan["linkinfo"]["info_kind"] == "vlan" and vlan["master"] == "vmbr300"
        assert vlan["linkinfo"]["info_data"]["id"] == 30 and vlan["link"] == "eth1"
    zk.delete(("network", "300"))
    for node in ("node1", "node2"):
        wait_for(lambda n=node: not {"vmbr300", "vlan300"} & set(links(cluster, n)))


@pytest.mark.skipif(VLANS, reason="this kernel has 802.1Q VLAN links")
def test_vlan_network_fails_cleanly_on_a_kernel_without_vlans(cluster, zk):
    zk.write(records.values(Network(vni=300, description="tagged", type=records.BRIDGED, vlan=30)))
    found = wait_states(zk, cluster, 300, dict.fromkeys(cluster.names, "failed"))
    assert found["node1"]["detail"] == "cannot create vlan300: Operation not supported"
    for node in cluster.names:
        assert not {"vmbr300", "vlan300"} & set(links(cluster, node))  # nothing half-built
    zk.delete(("network", "300"))
