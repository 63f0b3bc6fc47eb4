"""pvc.drivers.libvirt against libvirt's test driver (a private node per connection, from a
file: no daemon): states, starts, destroys, the self-fence's destroy_all_running, and that an
open without events starts no event loop (the watchdog's way); and against a real libvirtd
that freezes: the keepalive bounds a call, and the next call opens the connection again."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pvc.drivers.contracts import HypervisorDriver, HypervisorError
from pvc.drivers.libvirt import Hypervisor
from tests.conftest import REPO
from tests.libvirt_nodes import LibvirtNodes

RUNNING_UUID = "11111111-2222-3333-4444-555555555555"
CLUSTER = "6b1e4bd2-8a8e-4c37-9d1e-2f0c8f0a3c11"  # the identity of the cluster starting domains
NODE = f"""<node>
  <domain type='test'>
    <name>running</name><uuid>{RUNNING_UUID}</uuid><memory>65536</memory>
    <os><type>hvm</type></os>
  </domain>
</node>"""


def domain_xml(name: str, domain_uuid: str) -> str:
    return f"""<domain type='test'><name>{name}</name><uuid>{domain_uuid}</uuid>
      <memory>65536</memory><os><type>hvm</type></os></domain>"""


@pytest.fixture
def hypervisor(tmp_path):
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    opened = Hypervisor(f"test://{node}")
    yield opened
    opened.close()


def test_domains_start_and_destroy(hypervisor):
    assert isinstance(hypervisor, HypervisorDriver)
    assert hypervisor.domains() == {RUNNING_UUID: "running"}
    started = str(uuid.uuid4())
    hypervisor.start(domain_xml("transient", started), CLUSTER)
    assert hypervisor.state(started) == "running"
    hypervisor.destroy(started)
    assert hypervisor.state(started) is None  # a transient domain is gone once off
    hypervisor.destroy(started)  # destroying what is not here succeeds
    assert hypervisor.state(str(uuid.uuid4())) is None


def test_a_refused_start_raises_with_libvirts_message(hypervisor):
    with pytest.raises(HypervisorError, match="already"):
        hypervisor.start(domain_xml("running", RUNNING_UUID), CLUSTER)


def test_a_started_domain_carries_its_clusters_mark(hypervisor):
    started = str(uuid.uuid4())
    foreign = "<metadata><pvc:cluster xmlns:pvc='urn:pvc:cluster' uuid='other'/></metadata>"
    hypervisor.start(domain_xml("marked", started).replace("</domain>", foreign + "</domain>"),
                     CLUSTER)  # fmt: skip
    assert hypervisor.owner(started) == CLUSTER  # the mark the XML brought along is replaced
    assert hypervisor.owner(RUNNING_UUID) is None  # not started by pvc: unmarked
    hypervisor.mark(RUNNING_UUID, CLUSTER)
    assert hypervisor.owner(RUNNING_UUID) == CLUSTER
    assert hypervisor.owner(str(uuid.uuid4())) is None  # not here


def test_remove_leaves_nothing_of_a_domain(hypervisor):
    hypervisor.remove(RUNNING_UUID)  # persistent: off, then undefined
    assert hypervisor.state(RUNNING_UUID) is None and hypervisor.domains() == {}
    hypervisor.remove(RUNNING_UUID)  # removing what is not here succeeds


def test_destroy_all_running_leaves_nothing_active(hypervisor):
    for index in range(3):
        hypervisor.start(domain_xml(f"vm{index}", str(uuid.uuid4())), CLUSTER)
    assert len(hypervisor.domains()) == 4
    assert hypervisor.destroy_all_running() is True
    assert hypervisor.domains() == {RUNNING_UUID: "shutoff"}  # the persistent one stays, off
    assert hypervisor.destroy_all_running() is True  # nothing left: still done


def test_an_unreachable_libvirt_raises():
    with pytest.raises(HypervisorError, match="cannot connect to libvirt"):
        Hypervisor("qemu:///system?socket=/nonexistent/libvirt-sock")


def test_an_open_without_events_starts_no_event_loop(tmp_path):
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    code = (
        "import sys, threading; sys.path.insert(0, sys.argv[1])\n"
        "from pvc.drivers.libvirt import Hypervisor\n"
        "hypervisor = Hypervisor(sys.argv[2])\n"
        "assert hypervisor.destroy_all_running()\n"
        "print(sorted(thread.name for thread in threading.enumerate()))\n"
        "with_events = Hypervisor(sys.argv[2], lambda uuid: None)\n"
        "print(sorted(thread.name for thread in threading.enumerate()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(REPO), f"test://{node}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['MainThread']", "['MainThread', 'libvirt-events']"]


def test_a_call_to_a_frozen_libvirtd_fails_in_bounded_time_and_the_next_reconnects(
    tmp_path_factory,
):
    folder = tmp_path_factory.mktemp("ka")  # a short path: it holds the libvirtd's sockets
    nodes = LibvirtNodes(folder)
    try:
        node = nodes.start("kaa")
        hypervisor = Hypervisor(node.uri, lambda uuid: None, keepalive=(1, 2))
        assert hypervisor.domains() == {}
        libvirtd = int((folder / "kaa" / "libvirtd.pid").read_text())
        os.kill(libvirtd, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(HypervisorError, match="keepalive"):
                hypervisor.domains()
            assert time.monotonic() - started < 10  # about 3 s: 1 s x (2 + 1)
        finally:
            os.kill(libvirtd, signal.SIGCONT)
        assert hypervisor.domains() == {}  # a new connection
        hypervisor.close()
    finally:
        nodes.stop()
