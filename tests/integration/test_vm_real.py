"""The real path: two node daemons, each with its own libvirtd in its own namespaces, run the
tiny Linux guest defined through the API, live-migrate it while its console keeps ticking,
shut it down and remove it."""

import json
import time
import urllib.error
import urllib.request
import uuid

import libvirt
import pytest

from tests.conftest import free_port
from tests.libvirt_nodes import LibvirtNodes, build_guest, linux_domain_xml
from tests.local_cluster import LocalCluster


@pytest.fixture
def cluster(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("real")  # short: it holds the libvirtd sockets
    local = LocalCluster(workdir, 2, prefix="pvcr", subnet="10.205.0", zk_port=free_port())
    libvirt = LibvirtNodes(workdir / "libvirt")
    try:
        local.up()
        local.use_libvirt(libvirt.start_cluster(local))
        local.start_all()
        yield local
    finally:
        local.down()
        libvirt.stop()


def api(cluster, method, path, params=None):
    data = json.dumps(params).encode() if params is not None else None
    request = urllib.request.Request(cluster.api_url + path, data=data, method=method)
    request.add_header("X-Api-Key", cluster.api_key)
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (urllib.error.URLError, OSError):
            pass  # the API is not up yet
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def console_ticks(cluster, name):
    lines = api(cluster, "GET", f"/vm/{name}/console?lines=1000")["lines"]
    return [int(line.split()[1]) for line in lines if line.startswith("tick ")]


def test_tiny_guest_lives_migrates_and_goes(cluster, tmp_path):
    observer = cluster.running_observer(60)  # node1 and node2 must be able to take VMs
    guest = build_guest()
    name = "demo"
    xml = linux_domain_xml(name, str(uuid.uuid4()), guest, tmp_path / "console.log")
    until(lambda: api(cluster, "GET", "/node"), 10, "the API")
    defined = api(cluster, "POST", "/vm", {"xml": xml, "node": "node1"})
    assert defined["node"] == "node1"
    api(cluster, "POST", f"/vm/{name}/state", {"state": "start"})
    until(lambda: len(console_ticks(cluster, name)) >= 3, 60, "the guest to tick")

    before = console_ticks(cluster, name)[-1]
    api(cluster, "POST", f"/vm/{name}/node", {"action": "migrate", "node": "node2"})

    def migrated():
        record = api(cluster, "GET", f"/vm/{name}")
        observed = record["observed"] or {}
        return (
            record["state"] == "start"
            and observed == {**observed, "node": "node2", "state": "running"}
            and record
        )

    record = until(migrated, 60, "the live migration")  # fmt: skip
    assert record["lastnode"] == "node1"
    log = cluster.workdir / "node1" / "pvc.log"
    until(lambda: "migrated live to node2" in log.read_text(), 10, "the sender's report")
    assert "shutting it down to start it there" not in log.read_text()  # live, no fallback
    until(lambda: console_ticks(cluster, name)[-1] >= before + 3, 30, "ticks after migration")
    ticks = console_ticks(cluster, name)
    assert ticks == list(range(ticks[0], ticks[-1] + 1))  # never restarted, no gap

    # paused behind pvc's back (as a migration away that failed at its switchover leaves it):
    # a VM meant to run where it is paused is resumed
    conn = libvirt.open(cluster.libvirt["node2"]["uri"])
    try:
        conn.lookupByUUIDString(record["uuid"]).suspend()
        paused_at = console_ticks(cluster, name)[-1]
        until(lambda: console_ticks(cluster, name)[-1] >= paused_at + 3, 30, "the resume")
        assert (
            "paused here but meant to run here; resuming"
            in (cluster.workdir / "node2" / "pvc.log").read_text()
        )
    finally:
        conn.close()

    api(cluster, "POST", f"/vm/{name}/state", {"state": "shutdown"})
    until(lambda: api(cluster, "GET", f"/vm/{name}")["state"] == "stop", 60, "the shutdown")
    api(cluster, "DELETE", f"/vm/{name}")
    assert name not in [vm["name"] for vm in api(cluster, "GET", "/vm")]
    observer.close()


@pytest.mark.parametrize("killed", ["sender", "receiver"])
def test_a_migration_interrupted_by_a_daemon_restart_ends_on_one_node(cluster, tmp_path, killed):
    """kill -9 of one side's daemon while the live migration runs, then a restart: the VM ends
    running on exactly one node, in state start, and never ran on both (the observer asks
    both libvirtds all along)."""
    from tests.chaos.vm_observer import ObservedNode, VmObserver

    zk = cluster.running_observer(60)  # node1 and node2 must be able to take VMs
    vm_uuid = str(uuid.uuid4())
    xml = linux_domain_xml("hop", vm_uuid, build_guest(), tmp_path / "console.log")
    until(lambda: api(cluster, "GET", "/node"), 10, "the API")
    api(cluster, "POST", "/vm", {"xml": xml, "node": "node1"})
    api(cluster, "POST", "/vm/hop/state", {"state": "start"})
    nodes = {
        name: ObservedNode(lv["uri"], cluster.namespace(name))
        for name, lv in cluster.libvirt.items()
    }
    with VmObserver(nodes) as seen:
        seen.wait_running([vm_uuid], 60)
        until(lambda: len(console_ticks(cluster, "hop")) >= 2, 60, "the guest to tick")
        api(cluster, "POST", "/vm/hop/node", {"action": "migrate", "node": "node2"})
        deadline = time.monotonic() + 10
        while zk.read(("domain.state", vm_uuid)) != "migrate":  # kill while it migrates
            assert time.monotonic() < deadline, "the migration did not start"
            time.sleep(0.005)
        cluster.kill("node1" if killed == "sender" else "node2")
        time.sleep(1.0)
        cluster.start("node1" if killed == "sender" else "node2")
        until(lambda: zk.read(("domain.state", vm_uuid)) == "start", 90, "a settled state")
        seen.wait_running([vm_uuid], 60)
        node = zk.read(("domain.node", vm_uuid))
        assert seen.running_on(vm_uuid) == frozenset([node])
        assert (zk.read(("domain.observed", vm_uuid)) or {}).get("node") == node
        assert seen.violations() == []
    zk.close()
