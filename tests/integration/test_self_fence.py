"""The node watchdog's self-fence on a real libvirtd: at the deadline the daemon stopped
moving, every running domain of the node is destroyed; renewals and `unguard` keep them."""

import time
import uuid
from collections.abc import Iterator

import libvirt
import pytest

from pvc.node.watchdog_process import WatchdogProcess
from tests.libvirt_nodes import LibvirtNodes, firmware_domain_xml


@pytest.fixture
def node(tmp_path_factory) -> Iterator[libvirt.virConnect]:
    """One libvirt node (no namespace) with a small firmware-only VM running."""
    nodes = LibvirtNodes(tmp_path_factory.mktemp("sf"))
    try:
        started = nodes.start("sf1")
        conn = libvirt.open(started.uri)
        conn.createXML(firmware_domain_xml("sf-vm", str(uuid.uuid4())))
        conn.uri = started.uri
        yield conn
        conn.close()
    finally:
        nodes.stop()


def running(conn: libvirt.virConnect) -> list[str]:
    return [d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]


def wait_for_nothing_running(conn: libvirt.virConnect, timeout: float) -> float:
    started = time.monotonic()
    while running(conn):
        assert time.monotonic() - started < timeout, f"still running: {running(conn)}"
        time.sleep(0.05)
    return time.monotonic() - started


def test_vms_are_destroyed_when_the_deadline_passes(node):
    watchdog = WatchdogProcess()
    try:
        watchdog.tell(f"guard {time.monotonic() + 1.0:.6f} {node.uri}")
        assert running(node) == ["sf-vm"]
        assert wait_for_nothing_running(node, 10) >= 0.8
    finally:
        watchdog.close()


def test_renewals_and_unguard_keep_the_vms(node):
    watchdog = WatchdogProcess()
    try:
        for _ in range(10):  # a daemon that keeps writing keepalives
            watchdog.tell(f"guard {time.monotonic() + 0.5:.6f} {node.uri}")
            time.sleep(0.2)
        watchdog.tell("unguard")  # a clean stop
    finally:
        watchdog.close()
    time.sleep(1.0)
    assert running(node) == ["sf-vm"]


def test_a_dead_daemon_still_gets_its_vms_fenced(node):
    """The daemon's pipe closes without `unguard` (it was killed): the deadline still holds."""
    watchdog = WatchdogProcess()
    watchdog.tell(f"guard {time.monotonic() + 1.5:.6f} {node.uri}")
    watchdog._process.stdin.close()  # what the kernel does when the daemon dies
    assert running(node) == ["sf-vm"]
    assert wait_for_nothing_running(node, 10) >= 1.0
    assert watchdog._process.wait(5) == 0  # and then it exits


def test_a_stop_without_unguard_leaves_the_watchdog_to_keep_the_deadline(node):
    """A daemon whose shutdown could not record `shutdown` (Zookeeper unreachable) may be
    fenced by the cluster: closing its watchdog must not kill the watchdog's deadline."""
    watchdog = WatchdogProcess()
    watchdog.tell(f"guard {time.monotonic() + 1.5:.6f} {node.uri}")
    watchdog.close()
    assert watchdog._process.poll() is None  # left running, not killed
    assert running(node) == ["sf-vm"]
    wait_for_nothing_running(node, 10)  # fenced at the deadline by the watchdog left running
    assert watchdog._process.wait(5) == 0
