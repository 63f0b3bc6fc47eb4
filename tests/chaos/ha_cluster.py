"""A local cluster for high-availability tests: every node has its own libvirtd in its own
namespaces, its own simulated BMC (ipmi_sim) whose power control really powers the node off and
on (tests.chaos.node_faults), and an independent VmObserver watching where VMs run.

The BMCs listen on the bridge's address in the host namespace (the nodes' daemons reach them
there, as a management network), so a node cut off from the cluster network can still be
fenced through its BMC, as on real hardware with a separate BMC network.
"""

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pvc.zk.handler import ZKHandler
from tests.chaos.node_faults import NodeFaults
from tests.chaos.vm_observer import VmObserver
from tests.conftest import free_port
from tests.ipmi_bmcs import Bmcs
from tests.libvirt_nodes import LibvirtNodes, firmware_domain_xml
from tests.local_cluster import LocalCluster

VM_MEMORY_MIB = 32


@dataclass
class Timers:
    """The fencing profile: `keepalive_interval` x `fence_intervals` to be declared dead."""

    keepalive_interval: float = 1.0
    fence_intervals: int = 3
    suicide_intervals: int = 4
    session_timeout: float = 2.0
    failed_fence: str = "migrate"


@dataclass
class HaCluster:
    cluster: LocalCluster
    libvirt: LibvirtNodes
    bmcs: Bmcs
    faults: NodeFaults
    observer: VmObserver
    secret: str
    vms: dict[str, str] = field(default_factory=dict)  # name -> uuid

    # --- the API -------------------------------------------------------------------------------

    def api(self, method: str, path: str, timeout: float = 30, **params: Any) -> Any:
        """One API call on the floating address (retried while no primary serves)."""
        body = json.dumps(params).encode() if params else None
        deadline = time.monotonic() + timeout
        while True:
            request = urllib.request.Request(self.cluster.api_url + path, data=body, method=method)
            request.add_header("X-Api-Key", self.cluster.api_key)
            request.add_header("Content-Type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    return json.loads(reply.read())
            except urllib.error.HTTPError as error:
                raise RuntimeError(f"{method} {path}: {error.code} {error.read()!r}") from None
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def define_vms(self, count: int, prefix: str = "ha") -> list[str]:
        """Defines and starts `count` firmware-only VMs, spread over the nodes in turn; waits
        until they all run; their UUIDs."""
        names = self.cluster.names
        for index in range(count):
            name, vm_uuid = f"{prefix}{index}", str(uuid.uuid4())
            xml = firmware_domain_xml(name, vm_uuid, VM_MEMORY_MIB)
            self.api("POST", "/vm", xml=xml, node=names[index % len(names)])
            self.api("POST", f"/vm/{name}/state", state="start")
            self.vms[name] = vm_uuid
        self.observer.wait_running(self.vms.values(), 60)
        return list(self.vms.values())

    def wait_all_running(self, timeout: float) -> None:
        """Until a primary serves the API and every node's daemon is in run (a node still in
        init cannot take VMs)."""
        deadline = time.monotonic() + timeout
        while True:
            states = {
                node["name"]: node["daemon_state"] for node in self.api("GET", "/node", timeout)
            }
            if all(states.get(name) == "run" for name in self.cluster.names):
                return
            assert time.monotonic() < deadline, f"not every node daemon in run: {states}"
            time.sleep(0.2)

    def zk(self) -> ZKHandler:
        """A session of our own, with the cluster secret (it can read private keys)."""
        return ZKHandler(
            self.cluster.zk_hosts, connect_timeout=10, session_timeout=10, secret=self.secret
        ).connect()

    def wait_node(self, zk: ZKHandler, node: str, states: tuple[str, ...], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (state := zk.read(("node.state.daemon", node))) not in states:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node} is {state}, not {'/'.join(states)}, after {timeout} s")
            time.sleep(0.1)
        return state

    def bring_back(self, zk: ZKHandler, node: str, timeout: float = 60) -> None:
        """After a fault: the node powered on, running, and ready (its VMs come home)."""
        self.faults.heal(node)
        self.faults.thaw(node)
        self.faults.power_on(node)  # a no-op when the BMC already powered it on
        self.wait_node(zk, node, ("run",), timeout)
        self.api("POST", f"/node/{node}/domain-state", state="ready")
        deadline = time.monotonic() + timeout
        while zk.read(("node.state.domain", node)) != "ready":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node} did not get ready within {timeout} s")
            time.sleep(0.1)
        self.wait_migrations_over(timeout)

    def wait_migrations_over(self, timeout: float) -> None:
        """Until every VM is active (paused too) on one node only: the senders of the live
        migrations back home have let go. A fault injected at the instant a migration lands
        (before the sender's libvirt confirms it) holds the VM paused on its sender until that
        libvirt call times out: a real case, but not the one the next fault test measures."""
        with VmObserver.for_cluster(self.cluster, self.libvirt, count_paused=True) as strict:
            strict.wait_running(self.vms.values(), timeout)


def fence_events(zk: ZKHandler, node: str, since: float = 0.0) -> list[str]:
    """The events of the node's fence log written at or after `since` (time.time()): by time,
    since the log keeps only its newest entries."""
    return [e["event"] for e in zk.read(("node.fence_log", node)) or [] if e["time"] >= since]


def wait_fence_event(
    zk: ZKHandler, node: str, event: str, since: float, timeout: float = 30
) -> list[str]:
    """The node's fence events since `since`, once `event` is among them."""
    deadline = time.monotonic() + timeout
    while event not in (seen := fence_events(zk, node, since)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{node}: no {event} within {timeout} s: {seen}")
        time.sleep(0.1)
    return seen


@contextmanager
def ha_cluster(
    workdir: Path, nodes: int, prefix: str, subnet: str, timers: Timers | None = None
) -> Iterator[HaCluster]:
    timers = timers or Timers()
    cluster = LocalCluster(
        workdir,
        nodes,
        prefix=prefix,
        subnet=subnet,
        session_timeout=timers.session_timeout,
        keepalive_interval=timers.keepalive_interval,
        zk_port=free_port(),
    )
    libvirt = LibvirtNodes(workdir / "lv")
    bmcs = Bmcs(workdir / "bmc")
    faults = NodeFaults(cluster, libvirt)
    observer = None
    secret = cluster.zk_secret
    try:
        cluster.up()
        cluster.use_libvirt(libvirt.start_cluster(cluster))
        cluster.settings = {
            "timers": {
                "fence_intervals": timers.fence_intervals,
                "suicide_intervals": timers.suicide_intervals,
            },
            "fencing": {"failed_fence": timers.failed_fence},
        }
        for name in cluster.names:
            bmc = bmcs.start(
                name,
                faults.shell_command("power-on", name),
                faults.shell_command("power-off", name),
                address=f"{cluster.subnet}.1",  # PVC_TEST_SLOT may change the subnet
            )
            cluster.node_settings[name] = {
                "ipmi": {"host": bmc.host, "port": bmc.port, "user": bmc.user,
                         "password": bmc.password},
            }  # fmt: skip
            cluster.write_config(name)
        cluster.start_all()
        observer = VmObserver.for_cluster(cluster, libvirt).start()
        ha = HaCluster(cluster, libvirt, bmcs, faults, observer, secret)
        ha.wait_all_running(60)
        yield ha
    finally:
        if observer is not None:
            observer.close()
        faults.close()
        libvirt.stop()
        bmcs.stop()
        cluster.down()
