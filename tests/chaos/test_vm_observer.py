"""The HA test instruments on a real 2-node cluster with a real libvirtd per node: the VM observer
(tests/chaos/vm_observer.py) must catch a VM running on two nodes, even where libvirtd does not
answer, and must not cry wolf during starts, stops and live migrations; the node faults
(tests/chaos/node_faults.py) must do to the node what they say: pull the plug, freeze, cut."""

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import libvirt
import pytest

from tests.chaos import node_faults
from tests.chaos.node_faults import NodeFaults
from tests.chaos.vm_observer import NodeView, Qemu, VmObserver, all_running, recovered_at
from tests.conftest import free_port
from tests.libvirt_nodes import LibvirtNodes, firmware_domain_xml
from tests.local_cluster import LocalCluster

pytestmark = pytest.mark.chaos

MIGRATE = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)


class Rig:
    """The cluster, its libvirt nodes and faults, and the domains a test made (removed after)."""

    def __init__(self, cluster: LocalCluster, libvirt_nodes: LibvirtNodes, faults: NodeFaults):
        self.cluster = cluster
        self.libvirt = libvirt_nodes
        self.faults = faults
        self.made: set[str] = set()

    def connect(self, node: str) -> libvirt.virConnect:
        return libvirt.open(self.libvirt.nodes[node].uri)

    def start_vm(self, node: str, vm: str | None = None) -> str:
        """Defines and starts a firmware-only domain on the node, directly (pvc ignores domains
        that are not its own); returns its UUID."""
        vm = vm or str(uuid.uuid4())
        connection = self.connect(node)
        try:
            connection.defineXML(firmware_domain_xml(f"t-{vm[:8]}", vm)).create()
        finally:
            connection.close()
        self.made.add(vm)
        return vm

    def destroy(self, node: str, vm: str) -> None:
        connection = self.connect(node)
        try:
            connection.lookupByUUIDString(vm).destroy()
        finally:
            connection.close()

    def heal_all(self) -> None:
        """Every node thawed, healed and powered on."""
        for name in self.cluster.names:
            self.faults.thaw(name)
            self.faults.heal(name)
            self.faults.power_on(name)

    def clean(self) -> None:
        for node in self.cluster.names:
            try:
                connection = self.connect(node)
            except libvirt.libvirtError:
                continue  # powered off
            for domain in connection.listAllDomains():
                if domain.UUIDString() in self.made:
                    if domain.isActive():
                        domain.destroy()
                    domain.undefine()
            connection.close()
        self.made.clear()


@pytest.fixture(scope="module")
def module_rig(tmp_path_factory) -> Iterator[Rig]:
    workdir = tmp_path_factory.mktemp("vmobs")  # short: it holds the libvirtd sockets
    cluster = LocalCluster(workdir, 2, prefix="pvch", subnet="10.210.0", zk_port=free_port())
    libvirt_nodes = LibvirtNodes(workdir / "libvirt")
    faults = NodeFaults(cluster, libvirt_nodes)
    try:
        cluster.up()
        cluster.use_libvirt(libvirt_nodes.start_cluster(cluster))
        cluster.start_all()
        yield Rig(cluster, libvirt_nodes, faults)
    finally:
        faults.close()
        cluster.down()
        libvirt_nodes.stop()


@pytest.fixture
def rig(module_rig: Rig) -> Iterator[Rig]:
    """The module's rig with every node powered on and healthy, and cleaned up after a test."""
    module_rig.heal_all()
    yield module_rig
    module_rig.heal_all()  # a frozen libvirtd would hang the clean-up
    module_rig.clean()


@pytest.fixture
def observer(rig: Rig) -> Iterator[VmObserver]:
    with VmObserver.for_cluster(rig.cluster, rig.libvirt) as watching:
        yield watching
    assert watching.failed_polls == 0, watching.timeline()


@pytest.fixture
def zk(rig: Rig):
    handler = rig.cluster.observer()
    yield handler
    handler.close()


def wait_until(check, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def state_of(pid: int) -> str:
    """The process state letter (T: stopped); "gone" for a dead or zombie process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"
    return "gone" if state in ("Z", "X") else state


def libvirtd_pid(rig: Rig, node: str) -> int:
    return int((rig.libvirt.basedir / node / "libvirtd.pid").read_text())


def qemu_pids(vm: str) -> list[int]:
    """Every live QEMU process of the VM on this machine, from its command line (the observer
    scans by command name and namespace)."""
    found = []
    for entry in os.scandir("/proc"):
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except OSError:
            continue
        qemu = argv[0].startswith(b"/usr/bin/qemu-system") and vm.encode() in argv
        if qemu and state_of(int(entry.name)) != "gone":
            found.append(int(entry.name))
    return found


def netns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def netns_link(rig: Rig, node: str) -> str:
    """What readlink /proc/PID/ns/net gives for a process in the node's namespace."""
    return f"net:[{os.stat(f'/run/netns/{rig.cluster.namespace(node)}').st_ino}]"


def tcp_from(netns: str, address: str, port: int) -> str:
    """Connects from inside the namespace: "ok", or the error (one second at most)."""
    code = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout=1).close(); print('ok')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "python3", "-c", code], capture_output=True, text=True
    )
    return result.stdout.strip()


# --- the observer -------------------------------------------------------------------------------


def test_observer_catches_a_double_run_even_where_libvirtd_does_not_answer(rig, observer):
    vm = rig.start_vm("node1")
    observer.wait_running([vm], 5)
    assert observer.running_on(vm) == {"node1"}
    assert observer.violations() == []

    rig.start_vm("node2", vm)  # the same domain started behind everyone's back
    observer.wait_for(lambda poll: len(poll.placement.get(vm, ())) == 2, 3)
    [violation] = observer.violations()
    assert (violation.uuid, violation.nodes) == (vm, ("node1", "node2"))
    pids = {netns_of(pid): pid for pid in qemu_pids(vm)}
    for node in ("node1", "node2"):
        pid = pids[netns_link(rig, node)]
        assert violation.evidence[node].startswith(f"libvirt running, qemu pid {pid}(")

    rig.destroy("node2", vm)
    observer.wait_running([vm], 5)
    ended = violation.last_seen
    observer.wait_running([vm], 1)  # another poll: the violation is over, not extended
    assert violation.last_seen == ended and observer.violations() == [violation]

    # node1's libvirtd stops answering: its QEMU still counts, from /proc
    frozen = libvirtd_pid(rig, "node1")
    os.kill(frozen, signal.SIGSTOP)
    try:
        observer.wait_reachable("node1", 3, answers=False)
        assert observer.running_on(vm) == {"node1"}
        rig.start_vm("node2", vm)
        observer.wait_for(lambda poll: len(poll.placement.get(vm, ())) == 2, 3)
    finally:
        os.kill(frozen, signal.SIGCONT)
    second = observer.violations()[-1]
    assert second is not violation and second.nodes == ("node1", "node2")
    assert "libvirtd unreachable" in second.evidence["node1"]
    assert second.evidence["node2"].startswith("libvirt running")
    observer.wait_reachable("node1", 3)


def test_no_false_positive_through_starts_stops_restarts_and_a_live_migration(rig, observer):
    vms = [rig.start_vm("node1"), rig.start_vm("node1"), rig.start_vm("node2")]
    observer.wait_running(vms, 5)
    assert observer.on_node("node1") == set(vms[:2])
    # a VM restarted elsewhere at once, as HA does once its node is fenced
    rig.destroy("node2", vms[2])
    rig.start_vm("node1", vms[2])
    # a live migration: both QEMUs exist for a while, one of them paused
    source, target = rig.connect("node1"), rig.libvirt.nodes["node2"].tcp_uri
    try:
        started = time.monotonic()
        source.lookupByUUIDString(vms[0]).migrateToURI3(target, {}, MIGRATE)
        migration = time.monotonic() - started
    finally:
        source.close()
    observer.wait_for(lambda poll: poll.placement.get(vms[0]) == {"node2"}, 5)
    time.sleep(max(0.0, 3 - migration))  # a few seconds of running in all
    observer.wait_running(vms, 1)
    assert observer.violations() == [], observer.timeline()
    assert observer.placement() == {
        vms[0]: {"node2"},
        vms[1]: {"node1"},
        vms[2]: {"node1"},
    }
    assert observer.polls > 30
    print(f"\nmigration {migration:.2f} s; observer: {observer.coverage()}")
    moves = [placement.get(vms[0]) for _, placement in observer.history()]
    assert frozenset({"node1"}) in moves and moves[-1] == {"node2"}


def test_what_counts_as_running_on_a_node():
    """The rules of the module docstring, one node's view at a time."""
    strict, lenient = VmObserver({}, count_paused=True), VmObserver({})
    qemus = {"a": [Qemu(10, "S")], "b": [Qemu(11, "T")], "c": [Qemu(12, "S")]}
    answered = NodeView({"a": 1, "b": 3, "d": 1}, "", qemus)  # c: a stray, d: still starting
    assert set(lenient._runs(answered)) == {"a", "c", "d"}  # b is paused (a migration's)
    assert set(strict._runs(answered)) == {"a", "b", "c", "d"}
    assert lenient._runs(answered)["c"] == "qemu pid 12(S) not listed by libvirtd"
    silent = NodeView(None, "no answer within 0.5 s", qemus)  # /proc alone: every live QEMU
    assert lenient._runs(silent) == {
        "a": "qemu pid 10(S), libvirtd unreachable (no answer within 0.5 s)",
        "b": "qemu pid 11(T), libvirtd unreachable (no answer within 0.5 s)",
        "c": "qemu pid 12(S), libvirtd unreachable (no answer within 0.5 s)",
    }


def test_recovery_is_measured_from_the_history():
    """The first poll at which every VM ran on one node outside `avoid`."""
    one, two = "a", "b"
    history = [
        (1.0, {one: frozenset({"n1"}), two: frozenset({"n1"})}),
        (2.0, {two: frozenset({"n1"})}),
        (3.0, {one: frozenset({"n2"}), two: frozenset({"n1"})}),
        (4.0, {one: frozenset({"n2"}), two: frozenset({"n2"})}),
    ]
    assert recovered_at(history, [one, two], since=1.5, avoid={"n1"}) == 4.0
    assert recovered_at(history, [one], since=2.5, avoid={"n1"}) == 3.0
    assert recovered_at(history, [one, two], since=1.5) == 1.5  # true already then
    assert recovered_at(history, [one, two], since=2.0) == 3.0
    assert recovered_at(history, [one, two], since=0.5) == 1.0
    assert recovered_at(history, ["c"], since=0.5) is None
    assert not all_running({one: frozenset({"n1", "n2"})}, [one])


# --- the faults ---------------------------------------------------------------------------------


def test_power_off_and_on_as_a_bmc_runs_them(rig, observer, zk):
    """Through the shell commands a simulated BMC runs."""
    vm = rig.start_vm("node2")
    observer.wait_running([vm], 5)
    netns = rig.cluster.namespace("node2")
    daemon, libvirtd, [qemu] = (
        rig.cluster.processes["node2"].pid,
        libvirtd_pid(rig, "node2"),
        qemu_pids(vm),
    )
    assert daemon in node_faults.daemon_pids(netns)

    def run(action: str) -> str:
        result = subprocess.run(
            rig.faults.command(action, "node2"), capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert run("power-status") == "on"
    called = time.monotonic()
    took = float(run("power-off").split()[2])
    assert state_of(libvirtd) == state_of(qemu) == "gone"
    assert rig.cluster.processes["node2"].wait(1) == -signal.SIGKILL
    assert node_faults.processes_in(netns) == [] and qemu_pids(vm) == []
    assert run("power-status") == "off"
    observer.wait_stopped([vm], 1)
    assert not observer.reachable("node2")
    print(f"\npower-off took {took:.3f} s ({time.monotonic() - called:.3f} s with python start)")
    assert took < 1.0
    wait_until(lambda: not zk.exists(("node.alive", "node2")), 10, "node2's session to expire")

    run("power-on")
    assert run("power-status") == "on"
    observer.wait_reachable("node2", 5)
    wait_until(lambda: zk.exists(("node.alive", "node2")), 15, "node2's daemon to register")
    connection = rig.connect("node2")
    try:
        domain = connection.lookupByUUIDString(vm)
        assert not domain.isActive()  # defined still, not started: it was a power cut
    finally:
        connection.close()
    assert observer.violations() == []


def test_whole_node_freeze_keeps_qemu_and_power_off_fences_it(rig, observer):
    vm = rig.start_vm("node1")
    observer.wait_running([vm], 5)
    [qemu] = qemu_pids(vm)
    stopped = rig.faults.freeze("node1", whole=True)
    assert {qemu, libvirtd_pid(rig, "node1")} <= set(stopped)
    assert all(state_of(pid) == "T" for pid in stopped)
    observer.wait_reachable("node1", 3, answers=False)
    assert observer.running_on(vm) == {"node1"}  # a stopped QEMU can resume: it still counts
    took = rig.faults.power_off("node1")
    assert all(state_of(pid) == "gone" for pid in stopped)
    observer.wait_stopped([vm], 1)
    assert "node1" not in rig.cluster.processes
    rig.faults.power_on("node1")
    assert rig.cluster.alive("node1")
    observer.wait_reachable("node1", 5)
    assert observer.violations() == []
    assert took < 1.0


def test_freeze_stops_only_the_daemon_and_its_vms_keep_running(rig, observer, zk):
    vm = rig.start_vm("node1")
    observer.wait_running([vm], 5)
    [qemu] = qemu_pids(vm)
    libvirtd = libvirtd_pid(rig, "node1")
    wait_until(lambda: zk.exists(("node.alive", "node1")), 15, "node1's daemon to register")
    [daemon] = rig.faults.freeze("node1")
    try:
        assert daemon == rig.cluster.processes["node1"].pid
        assert state_of(daemon) == "T"
        assert state_of(libvirtd) != "T" and state_of(qemu) != "T"
        wait_until(lambda: not zk.exists(("node.alive", "node1")), 10, "its session to expire")
        assert observer.running_on(vm) == {"node1"} and observer.reachable("node1")
    finally:
        rig.faults.thaw("node1")
    assert state_of(daemon) not in ("T", "gone")  # whether it registers again is pvc's business
    assert observer.running_on(vm) == {"node1"} and observer.violations() == []


def test_cut_silences_zookeeper_and_the_peers_but_not_the_vms(rig, observer, zk):
    vm = rig.start_vm("node2")
    observer.wait_running([vm], 5)
    netns, other = rig.cluster.namespace("node2"), rig.cluster.namespace("node1")
    zk_address, zk_port = rig.cluster.zk_hosts.split(":")
    node1, node2 = (rig.libvirt.nodes[name].address for name in ("node1", "node2"))
    assert tcp_from(netns, zk_address, int(zk_port)) == "ok"
    assert tcp_from(netns, node1, 16509) == "ok"  # node1's libvirtd
    wait_until(lambda: zk.exists(("node.alive", "node2")), 15, "node2's daemon to register")
    rig.faults.cut("node2")
    try:
        # silence, not an error: as with a cut cable
        assert tcp_from(netns, zk_address, int(zk_port)) == "TimeoutError timed out"
        assert tcp_from(netns, node1, 16509) == "TimeoutError timed out"
        assert tcp_from(other, node2, 16509) == "TimeoutError timed out"
        wait_until(lambda: not zk.exists(("node.alive", "node2")), 10, "its session to expire")
        assert observer.running_on(vm) == {"node2"} and observer.reachable("node2")
    finally:
        rig.faults.heal("node2")
    assert tcp_from(netns, zk_address, int(zk_port)) == "ok"
    assert tcp_from(other, node2, 16509) == "ok"
    rig.faults.cut("node2", [zk_address])  # Zookeeper only: the peers still answer
    try:
        assert tcp_from(netns, zk_address, int(zk_port)) == "TimeoutError timed out"
        assert tcp_from(netns, node1, 16509) == "ok"
    finally:
        rig.faults.heal("node2")
    assert observer.violations() == []
