"""A real local cluster for tests, chaos runs and benchmarks.

Node daemons (`dist/pvc node run`) run as real processes, each in its own network namespace
joined to the others by a bridge, so the floating address really moves between namespaces.
Zookeeper runs on the host, listening on the bridge address. Used by tests/ (fixtures),
scripts/chaos-primary and scripts/bench/failover.
"""

import ctypes
import os
import signal
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from pvc.drivers.links import netlink_attributes, netlink_dump
from pvc.zk.handler import ZKHandler
from tests import processes
from tests.processes import COMMAND_TIMEOUT

REPO = Path(__file__).resolve().parent.parent
PVC_BIN = REPO / "dist" / "pvc"
# rtnetlink, for FloatingProbe (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h, sched.h)
CLONE_NEWNET = 0x40000000
RTM_GETADDR = 22
IFA_LOCAL = 2


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=COMMAND_TIMEOUT)


class LocalCluster:
    """`nodes` coordinators named node1..nodeN on bridge `<prefix>br`, subnet `<subnet>.0/24`."""

    def __init__(
        self,
        workdir: Path,
        nodes: int = 3,
        *,
        prefix: str = "pvct",
        subnet: str = "10.201.0",
        session_timeout: float = 2.0,
        keepalive_interval: float = 1.0,
        zk_port: int = 2181,
        libvirt_uri: str = "test:///default",
    ):
        self.workdir = Path(workdir)
        self.names = [f"node{i}" for i in range(1, nodes + 1)]
        slot = os.environ.get("PVC_TEST_SLOT")  # several checkouts testing on one host at once
        if slot:
            prefix, subnet = f"{prefix}{slot}", f"{subnet.rsplit('.', 1)[0]}.{int(slot)}"
        self.prefix = prefix
        self.subnet = subnet
        self.bridge = f"{prefix}br"
        self.floating = f"{subnet}.254"
        self.zk_hosts = f"{subnet}.1:{zk_port}"
        self.zk_port = zk_port
        self.session_timeout = session_timeout
        self.keepalive_interval = keepalive_interval
        self.libvirt_uri = libvirt_uri  # test:///default: each daemon its own private driver
        self.libvirt: dict[str, dict[str, str]] = {}  # per node: real libvirtd settings
        self.settings: dict[str, Any] = {}  # more configuration, for every node
        self.node_settings: dict[str, dict[str, Any]] = {}  # more configuration, per node
        self.api_key = uuid.uuid4().hex
        self.zk_secret = uuid.uuid4().hex
        self.api_url = f"http://{self.floating}:7370/api/v1"
        self.processes: dict[str, subprocess.Popen] = {}
        self._started: list[subprocess.Popen] = []

    # --- set-up -------------------------------------------------------------------------------

    def namespace(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def up(self) -> "LocalCluster":
        self.down_network()
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for index, name in enumerate(self.names, start=1):
            ns = self.namespace(name)
            sh("ip", "netns", "add", ns)
            veth = f"{self.prefix}v{index}"
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", self.bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.subnet}.{10 + index}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        zk_dir = self.workdir / "zookeeper"
        subprocess.run(
            [str(REPO / "scripts" / "zookeeper"), "start", str(zk_dir), str(self.zk_port),
             f"{self.subnet}.1"],
            check=True, capture_output=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        for name in self.names:
            self.write_config(name)
        return self

    def write_config(self, name: str) -> Path:
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        document = {
            "node": {"name": name},
            "cluster": {"coordinators": self.names},
            "networks": {"cluster": {"device": "eth0", "floating_ip": f"{self.floating}/24"}},
            "zookeeper": {
                "hosts": self.zk_hosts,
                "session_timeout": self.session_timeout,
                "secret": self.zk_secret,
            },
            "api": {
                "listen_address": self.floating,
                "authentication": {"keys": [{"key": self.api_key}]},
            },
            "libvirt": self.libvirt.get(name, {"uri": self.libvirt_uri}),
            "timers": {"keepalive_interval": self.keepalive_interval, "relinquish_timeout": 5},
            "logging": {"file": str(folder / "pvc.log"), "log_keepalives": False},
        }
        for extra in (self.settings, self.node_settings.get(name, {})):
            for section, values in extra.items():
                document[section] = {**document.get(section, {}), **values}
        path = folder / "pvc.conf"
        path.write_text(yaml.safe_dump(document))
        path.chmod(0o600)
        return path

    def use_ceph(self, service: Any) -> None:
        """Gives every node's daemon the `ceph` section for a tests.ceph_service.CephService,
        and a route to its address through the host (only that one: a default route would
        send the nodes' DNS queries to a nameserver they cannot reach, each a 5 s wait)."""
        for name in self.names:
            sh("ip", "-n", self.namespace(name), "route", "replace", f"{service.address}/32",
               "via", f"{self.subnet}.1")  # fmt: skip
        self.settings["ceph"] = service.settings()
        for name in self.names:
            self.write_config(name)

    def use_libvirt(self, nodes: list) -> None:
        """Points each node's daemon at its own libvirtd (tests.libvirt_nodes.LibvirtNode)."""
        for node in nodes:
            self.libvirt[node.name] = {"uri": node.uri, "migration_uri": node.tcp_uri}
            self.write_config(node.name)

    # --- daemons ------------------------------------------------------------------------------

    def start(self, name: str) -> subprocess.Popen:
        config = self.workdir / name / "pvc.conf"
        with open(self.workdir / name / "stderr.log", "ab") as stderr:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace(name), str(PVC_BIN), "node", "run",
                 "--config", str(config)],
                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )  # fmt: skip
        self.processes[name] = process
        self._started.append(process)
        return process

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)

    def signal(self, name: str, signum: int) -> None:
        """Signals the daemon process only (not its watchdog)."""
        os.kill(self.processes[name].pid, signum)

    def stop(self, name: str, timeout: float = 15) -> int | None:
        """Graceful stop (SIGTERM); kills it if it takes longer than `timeout`."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        code = processes.end(process, timeout)
        return None if code == -signal.SIGKILL else code

    def kill(self, name: str, process: subprocess.Popen | None = None) -> None:
        """kill -9 of the daemon; its watchdog sees the pipe close and exits by itself."""
        processes.end(process or self.processes.pop(name), 0, signal.SIGKILL)

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    # --- observation --------------------------------------------------------------------------

    def observer(self) -> ZKHandler:
        """An independent Zookeeper session for watching the cluster."""
        return ZKHandler(
            self.zk_hosts, connect_timeout=10, session_timeout=10, secret=self.zk_secret
        ).connect()

    def running_observer(self, timeout: float = 20) -> ZKHandler:
        """An observer, once a primary is in place and every node has sent its figures (a
        node without them cannot take VMs yet)."""
        handler = self.observer()
        self.wait_for_primary(handler, timeout)
        deadline = time.monotonic() + timeout
        while any(handler.read(("node.stats", name)) is None for name in self.names):
            if time.monotonic() > deadline:
                handler.close()
                raise TimeoutError(f"not every node sent its figures within {timeout} s")
            time.sleep(0.1)
        return handler

    def floating_holders(self) -> list[str]:
        """The nodes whose namespace has the floating address right now."""
        holders = []
        for name in self.names:
            result = subprocess.run(
                ["ip", "-n", self.namespace(name), "-o", "-4", "addr", "show", "dev", "eth0"],
                capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
            )  # fmt: skip
            if f" {self.floating}/" in result.stdout:
                holders.append(name)
        return holders

    def floating_probe(self) -> "FloatingProbe":
        """A faster floating_holders(), for polling: close it after use."""
        return FloatingProbe(self)

    def wait_for_primary(self, zk: ZKHandler, timeout: float, not_: str | None = None) -> str:
        """Waits until one node is primary (router state) and named primary; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            primary = zk.read("base.config.primary_node")
            named = primary not in (None, "none", not_)
            if named and zk.read(("node.state.router", primary)) == "primary":
                return primary
            time.sleep(0.02)
        raise TimeoutError(f"no primary within {timeout} s")

    def wait_for_run(self, zk: ZKHandler, name: str, timeout: float = 30) -> None:
        """Waits until `name`'s daemon is in state run: a node still starting (init) cannot
        be handed the primary role, and on a loaded machine a node may be seconds behind the
        first one up."""
        deadline = time.monotonic() + timeout
        while zk.read(("node.state.daemon", name)) != "run":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not in state run within {timeout} s")
            time.sleep(0.05)

    # --- tear-down ----------------------------------------------------------------------------

    def down(self) -> None:
        # every daemon ever started, not only the current ones: a chaos event that restarts
        # a node while another thread tracks it must not leave a daemon behind
        for process in self._started:
            processes.end(process, 0, signal.SIGKILL)
        self.processes.clear()
        self._started.clear()
        subprocess.run(
            [str(REPO / "scripts" / "zookeeper"), "stop", str(self.workdir / "zookeeper")],
            check=False, capture_output=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        self.down_network()

    def down_network(self) -> None:
        for index, name in enumerate(self.names, start=1):
            subprocess.run(
                ["ip", "netns", "del", self.namespace(name)],
                capture_output=True, timeout=COMMAND_TIMEOUT,
            )  # fmt: skip
            # a namespace outlives `ip netns del` while a process (an earlier, killed run's)
            # is in it; deleting our end of the pair frees the name for this run
            subprocess.run(
                ["ip", "link", "del", f"{self.prefix}v{index}"],
                capture_output=True, timeout=COMMAND_TIMEOUT,
            )  # fmt: skip
        subprocess.run(
            ["ip", "link", "del", self.bridge], capture_output=True, timeout=COMMAND_TIMEOUT
        )


class FloatingProbe:
    """Which namespaces hold the floating address, through one rtnetlink socket opened in each
    namespace and asked for its IPv4 addresses: about 0.05 ms per namespace, against 2 ms for a
    run of `ip -n` (and 5 ms for pyroute2's IPRoute, whose event loop also holds the GIL)."""

    def __init__(self, cluster: LocalCluster):
        self.address = socket.inet_aton(cluster.floating)
        self.sockets = {name: _netlink_socket_in(cluster.namespace(name)) for name in cluster.names}

    def holders(self) -> list[str]:
        return [
            name for name, sock in self.sockets.items() if self.address in _ipv4_addresses(sock)
        ]

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()


def _netlink_socket_in(namespace: str) -> socket.socket:
    """A NETLINK_ROUTE socket of the network namespace: this thread enters the namespace just to
    create it (a netlink socket stays in the namespace it was made in), then comes back."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{namespace}") as target, open("/proc/thread-self/ns/net") as home:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"cannot enter network namespace {namespace}")
        try:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "cannot return to the network namespace")


def _ipv4_addresses(sock: socket.socket) -> set[bytes]:
    """Every IPv4 address (IFA_LOCAL, packed) in the socket's namespace: one RTM_GETADDR dump."""
    request = struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0)  # ifaddrmsg: AF_INET, zeros
    found: set[bytes] = set()
    for data, start, end in netlink_dump(sock, RTM_GETADDR, request):
        local = netlink_attributes(data, start + 8, end).get(IFA_LOCAL)  # past the ifaddrmsg
        if local:
            found.add(local)
    return found
