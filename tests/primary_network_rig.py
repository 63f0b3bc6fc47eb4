"""A LocalCluster with the primary's network services, and namespace clients standing for VMs.

STAND-IN (until the links controller, pvc.node.networks, lands): `Segment` makes what that
controller will make for a managed network: `vmbr<vni>` in every node's namespace, all of
them joined into one layer-2 segment (a bridge in the host's namespace plays the VXLAN). A
`Client` is a namespace with an `eth0` of a chosen MAC plugged into that segment, as a VM's
NIC would be; it asks for a lease with busybox udhcpc and resolves with busybox nslookup.
"""

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pvc.ops import network_records
from pvc.ops.network_records import Network
from tests.conftest import free_port
from tests.local_cluster import LocalCluster, sh
from tests.processes import COMMAND_TIMEOUT

UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc's event script: on a lease, put the address on the interface and say which it is
# (and the MTU option, if any)
if [ "$1" = bound ] || [ "$1" = renew ]; then
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    echo "$mtu" > "$LEASE_OUT.mtu"
    echo "$ip" > "$LEASE_OUT"
fi
exit 0
"""


def network(vni: int, **changes) -> Network:
    """A managed network 10.<vni>.0.0/24 (vni < 256) with DHCP and a domain."""
    fields = {
        "domain": f"net{vni}.test",
        "ip4_network": f"10.{vni}.0.0/24",
        "ip4_gateway": f"10.{vni}.0.1",
        "dhcp4": True,
        "dhcp4_start": f"10.{vni}.0.100",
        "dhcp4_end": f"10.{vni}.0.200",
    }
    return Network(vni, f"network {vni}", "managed", **{**fields, **changes})


def write_network(zk, net: Network) -> None:
    zk.write(network_records.values(net))


def network_cluster(workdir: Path) -> LocalCluster:
    """Three coordinators, each with its own run directory (readable by dnsmasq's user)."""
    cluster = LocalCluster(workdir, 3, zk_port=free_port())
    slot = os.environ.get("PVC_TEST_SLOT", "")
    run = Path(tempfile.mkdtemp(prefix=f"pvc-net{slot}-"))
    run.chmod(0o755)
    cluster.run_root = run  # type: ignore[attr-defined]
    for name in cluster.names:
        cluster.node_settings[name] = {
            "networks": {
                "cluster": {"device": "eth0", "floating_ip": f"{cluster.floating}/24"},
                "run_directory": str(run / name),
            }
        }
    return cluster


@contextmanager
def running_cluster(workdir: Path, vnis: tuple[int, ...] = (100,)) -> Iterator[LocalCluster]:
    """network_cluster() up and running, with a Segment for each of `vnis` (`.segments`)
    and the Clients a test adds (`.clients`); all of it down afterwards."""
    cluster = network_cluster(workdir).up()
    cluster.segments = [Segment(cluster, vni) for vni in vnis]  # type: ignore[attr-defined]
    cluster.clients = []  # type: ignore[attr-defined]
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.down()
        for part in cluster.clients + cluster.segments:  # type: ignore[attr-defined]
            part.down()


def observer_with(cluster: LocalCluster, *networks: Network) -> Iterator[Any]:
    """An observer session, once there is a primary, that wrote `networks` first."""
    zk = cluster.running_observer(30)  # a primary, and every node in state run
    try:
        for net in networks:
            write_network(zk, net)
        yield zk
    finally:
        zk.close()


def in_ns(namespace: str, *args: str, timeout: float = COMMAND_TIMEOUT, env=None):
    return subprocess.run(
        ["ip", "netns", "exec", namespace, *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def addresses(namespace: str, interface: str) -> list[str]:
    """The addresses (with prefix) on an interface of a namespace, but IPv6 link-local ones
    (169.254.169.254, link scope, counts); [] if it is missing."""
    result = subprocess.run(
        ["ip", "-n", namespace, "-o", "addr", "show", "dev", interface],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    found = re.findall(r"inet6? (\S+) .*?scope (?:global|host|link)", result.stdout)
    return [address for address in found if not address.startswith("fe80:")]


def processes_in(namespace: str, comm: str, argument: str = "") -> list[int]:
    """PIDs of the processes named `comm` in a network namespace (with `argument` in their
    command line: "dnsmasq/100/" for network 100's dnsmasq, say)."""
    result = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True,
                            timeout=COMMAND_TIMEOUT)  # fmt: skip
    found = []
    for pid in result.stdout.split():
        try:
            named = Path(f"/proc/{pid}/comm").read_text().strip() == comm
            if named and argument in Path(f"/proc/{pid}/cmdline").read_bytes().decode():
                found.append(int(pid))
        except OSError:
            pass
    return found


def serving(cluster: LocalCluster, node: str, vni: int = 100) -> bool:
    """`node` holds network `vni`'s gateway and runs its dnsmasq."""
    ns = cluster.namespace(node)
    gateway = f"10.{vni}.0.1/24" in addresses(ns, f"vmbr{vni}")
    return gateway and bool(processes_in(ns, "dnsmasq", f"dnsmasq/{vni}/"))


def wait_for(what: str, check, timeout: float = 30.0, interval: float = 0.1):
    """Polls `check()` until it returns something true; returns it (TimeoutError naming what)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(interval)


class Segment:
    """STAND-IN for the links controller: network `vni`'s bridge on every node, one segment."""

    def __init__(self, cluster: LocalCluster, vni: int, nodes: list[str] | None = None):
        """`nodes`: those that get the bridge now (default: all)."""
        self.cluster = cluster
        self.vni = vni
        self.bridge = f"{cluster.prefix}s{vni}"
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "link", "set", self.bridge, "up")
        for name in cluster.names if nodes is None else nodes:
            self.add_bridge(name)

    def add_bridge(self, name: str) -> None:
        ns = self.cluster.namespace(name)
        bridge = f"vmbr{self.vni}"
        port = f"{self.cluster.prefix}{self.vni}n{self.cluster.names.index(name) + 1}"
        sh("ip", "-n", ns, "link", "add", bridge, "type", "bridge")
        # as the links controller will: a node takes no address of its own from a guest RA
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{bridge}.autoconf=0")
        sh("ip", "-n", ns, "link", "set", bridge, "up")
        seg = f"vxlanseg{self.vni}"  # named as pvc's own links are: the firewall lets the
        # segment (other nodes' guests, the clients) in as it lets the VXLAN
        sh("ip", "link", "add", port, "type", "veth", "peer", "name", seg, "netns", ns)
        sh("ip", "-n", ns, "link", "set", seg, "master", bridge, "up")
        sh("ip", "link", "set", port, "master", self.bridge, "up")

    def down(self) -> None:
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)
        for index in range(1, len(self.cluster.names) + 1):
            port = f"{self.cluster.prefix}{self.vni}n{index}"
            subprocess.run(["ip", "link", "del", port], capture_output=True, timeout=30)


class Client:
    """A namespace standing for a VM with one NIC of MAC `mac` on a segment."""

    def __init__(self, segment: Segment, name: str, mac: str, workdir: Path):
        self.namespace = f"{segment.cluster.prefix}-{name}"
        self.port = f"{segment.cluster.prefix}{name}"
        self.mac = mac
        self.script = workdir / f"udhcpc-{name}.sh"
        self.script.write_text(UDHCPC_SCRIPT)
        self.script.chmod(0o755)
        self.out = workdir / f"lease-{name}"
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=30)
        sh("ip", "netns", "add", self.namespace)
        sh("ip", "link", "add", self.port, "type", "veth", "peer", "name", "eth0", "netns",
           self.namespace)  # fmt: skip
        sh("ip", "-n", self.namespace, "link", "set", "eth0", "address", mac)
        sh("ip", "-n", self.namespace, "link", "set", "eth0", "up")
        sh("ip", "-n", self.namespace, "link", "set", "lo", "up")
        sh("ip", "link", "set", self.port, "master", segment.bridge, "up")

    def dhcp(self, hostname: str | None = None, tries: int = 60) -> tuple[str, float]:
        """(address leased, seconds from udhcpc's start to bound); AssertionError if none."""
        self.out.unlink(missing_ok=True)
        # the MTU option asked for, as dhclient and systemd-networkd do (dnsmasq sends it then)
        args = ["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", str(tries), "-T", "1",
                "-A", "1", "-O", "mtu", "-s", str(self.script)]  # fmt: skip
        if hostname:
            args += ["-x", f"hostname:{hostname}"]
        started = time.monotonic()
        result = in_ns(self.namespace, *args, env={**os.environ, "LEASE_OUT": str(self.out)},
                       timeout=tries * 2 + 30)  # fmt: skip
        took = time.monotonic() - started
        assert result.returncode == 0 and self.out.exists(), result.stdout + result.stderr
        return self.out.read_text().strip(), took

    def leased_mtu(self) -> str:
        """The MTU option of the last lease ("" for none)."""
        return self.out.with_name(f"{self.out.name}.mtu").read_text().strip()

    def resolve(self, name: str, server: str) -> list[str]:
        """The addresses `server` gives for `name` ([] when it does not know it)."""
        return lookup(["ip", "netns", "exec", self.namespace], name, server)

    def ping(self, address: str) -> bool:
        return in_ns(self.namespace, "ping", "-c", "1", "-W", "2", address).returncode == 0

    def down(self) -> None:
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.port], capture_output=True, timeout=30)


def lookup(prefix: list[str], name: str, server: str) -> list[str]:
    result = subprocess.run(
        [*prefix, "busybox", "nslookup", "-type=a", name, server],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    answer = result.stdout.split("Name:", 1)
    return re.findall(r"Address: (\S+)", answer[1]) if len(answer) == 2 else []
