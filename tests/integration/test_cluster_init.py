"""Initialising the cluster (pvc.ops.cluster.initialize) through the real API and ops, on a real
Zookeeper: an overwrite waits for every node daemon to stop, removes a tree larger than one
transaction, and leaves nothing half; the cluster name follows the name rule; the cluster's
identity is made once."""

import signal
import subprocess
import time
import uuid

import pytest

from pvc.errors import Conflict, InvalidInput
from pvc.ops import cluster
from pvc.zk.handler import ZKHandler
from tests import processes
from tests.conftest import ZK_SECRET, write_config
from tests.integration.test_api import call


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def vm_values(vm_uuid: str, name: str) -> dict:
    return {
        ("domain", vm_uuid): name,
        ("domain.state", vm_uuid): "stop",
        ("domain.node", vm_uuid): "hv1",
        ("domain.xml", vm_uuid): f"<domain><name>{name}</name></domain>",
        ("domain.failed_reason", vm_uuid): "",
        ("name.domain", name): vm_uuid,
    }


@pytest.fixture
def node_daemon(tmp_path, zk_hosts, pvc_bin):
    """Starts `pvc node run` (a hypervisor without libvirt) on this test's Zookeeper."""
    started: list[subprocess.Popen] = []

    def start(name: str) -> subprocess.Popen:
        config = write_config(
            tmp_path / f"{name}.conf",
            zk_hosts,
            node={"name": name},
            libvirt={"enabled": False},
            timers={"keepalive_interval": 0.5},
            api={"authentication": {"keys": [{"key": "unused", "description": "test"}]}},
        )
        with open(tmp_path / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                [pvc_bin, "node", "run", "--config", str(config)], stdout=log, stderr=log
            )
        started.append(process)
        return process

    yield start
    for process in started:
        processes.end(process)


def test_overwrite_waits_until_every_node_daemon_stopped(api_server, zk, node_daemon):
    assert call(api_server, "POST", "/initialize", {"name": "lab"})[0] == 200
    first_identity = cluster.identity(zk)
    zk.write(vm_values(str(uuid.uuid4()), "kept"))
    daemons = {name: node_daemon(name) for name in ("hv1", "hv2")}
    running = lambda: all(zk.read(("node.state.daemon", n)) == "run" for n in daemons)  # noqa: E731
    wait_until(running, 30, "both daemons running")

    status, body = call(api_server, "POST", "/initialize", {"overwrite": True, "name": "new"})
    assert status == 409
    assert body["message"] == "stop the node daemons first: hv1, hv2"
    # nothing was touched: the daemons stay registered, the VM and the name stay
    assert call(api_server, "GET", "/status")[1]["cluster"] == "lab"
    assert [vm["name"] for vm in call(api_server, "GET", "/vm")[1]] == ["kept"]
    assert running() and all(zk.exists(("node.alive", n)) for n in daemons)

    daemons["hv1"].send_signal(signal.SIGTERM)
    assert daemons["hv1"].wait(30) == 0
    status, body = call(api_server, "POST", "/initialize", {"overwrite": True, "name": "new"})
    assert (status, body["message"]) == (409, "stop the node daemons first: hv2")

    daemons["hv2"].send_signal(signal.SIGTERM)
    assert daemons["hv2"].wait(30) == 0
    status, body = call(api_server, "POST", "/initialize", {"overwrite": True, "name": "new"})
    assert status == 200, body
    status, body = call(api_server, "GET", "/status")
    assert body["cluster"] == "new" and body["nodes"]["total"] == 0 and body["vms"]["total"] == 0
    assert call(api_server, "GET", "/vm")[1] == []
    assert cluster.identity(zk) != first_identity  # a new cluster

    # a node daemon started afterwards registers in the new tree, whole
    node_daemon("hv1")
    wait_until(lambda: zk.read(("node.state.daemon", "hv1")) == "run", 30, "hv1 running")
    assert zk.read(("node.mode", "hv1")) == "hypervisor"


@pytest.mark.parametrize(
    "name", ["bad\x1bname", "two\nlines", "", "-dash", "a" * 64, "spa ce", "dot/slash"]
)
def test_cluster_name_follows_the_name_rule(api_server, zk, name):
    status, body = call(api_server, "POST", "/initialize", {"name": name})
    assert status == 400, body
    # the API's parameter check (or, past it, the op's) names the rule or the limit
    assert body["message"].startswith(("invalid cluster name ", "parameter 'name' is longer"))
    assert "\n" not in body["message"] and "\x1b" not in body["message"]
    assert not cluster.is_initialized(zk)  # nothing written
    status, body = call(api_server, "POST", "/initialize", {"name": "lab-1.a_b" + "c" * 54})
    assert status == 200, body


def test_overwrite_of_a_tree_larger_than_one_transaction(zk: ZKHandler):
    """18,000 keys: more than Zookeeper takes in one transaction (1 MiB), removed in steps."""
    cluster.initialize(zk, name="big")
    for batch in range(15):  # 200 VMs per write: each write stays under pvc's write limit
        values: dict = {}
        for index in range(200):
            values |= vm_values(str(uuid.uuid4()), f"vm{batch}-{index}")
        zk.write(values)
    assert len(zk.children("base.domains")) == 3000
    cluster.initialize(zk, overwrite=True, name="small")
    assert zk.children("base.domains") == [] and zk.children("base.names.domains") == []
    assert zk.read("base.config.cluster_name") == "small"


def test_an_interrupted_overwrite_is_finished_by_the_next_initialise(zk: ZKHandler):
    """After the retiring transaction the cluster reads as not initialised, whatever is left;
    any initialise (a daemon's at start too) removes the rest and writes a fresh tree."""
    cluster.initialize(zk, name="old")
    vm_uuid = str(uuid.uuid4())
    zk.write(vm_values(vm_uuid, "leftover"))
    zk.write({}, delete=["base.schema"])  # where an overwrite that died after step 2 stops
    assert not cluster.is_initialized(zk)
    cluster.initialize(zk, name="fresh")
    assert zk.children("base.domains") == [] and not zk.exists(("name.domain", "leftover"))
    assert zk.read("base.config.cluster_name") == "fresh"
    with pytest.raises(Conflict, match="already initialised"):
        cluster.initialize(zk, name="again")


def test_an_overwrite_is_refused_for_a_daemon_alive_in_any_session(zk: ZKHandler, zk_hosts):
    """The liveness node of a daemon (an ephemeral node of its session) is what counts."""
    cluster.initialize(zk)
    daemon = ZKHandler(zk_hosts, connect_timeout=10, session_timeout=4, secret=ZK_SECRET).connect()
    try:
        assert daemon.claim_ephemeral(("node.alive", "node7"), "session")
        with pytest.raises(Conflict, match="^stop the node daemons first: node7$"):
            cluster.initialize(zk, overwrite=True)
        assert cluster.is_initialized(zk)
    finally:
        daemon.close()
    cluster.initialize(zk, overwrite=True)  # its session ended with it
    assert zk.children("base.nodes") == []


def test_identity_is_made_at_initialise_and_once_for_an_older_cluster(zk: ZKHandler, zk_hosts):
    cluster.initialize(zk)
    made = zk.read("base.config.cluster_uuid")
    assert str(uuid.UUID(made)) == made and cluster.identity(zk) == made
    zk.write({}, delete=["base.config.cluster_uuid"])  # a cluster initialised before identities
    other = ZKHandler(zk_hosts, connect_timeout=10, session_timeout=4, secret=ZK_SECRET).connect()
    try:
        first = cluster.identity(other)
        assert first != made and cluster.identity(zk) == first == cluster.identity(other)
    finally:
        other.close()


def test_a_name_is_checked_before_anything_is_read(zk: ZKHandler):
    with pytest.raises(InvalidInput, match="invalid cluster name"):
        cluster.initialize(zk, name="x" * 1_000_000)
    assert zk.children("base.nodes") == []


def test_a_daemon_that_found_no_tree_never_wipes_the_one_made_meanwhile(zk: ZKHandler, monkeypatch):
    """Two daemons find no tree at once; the first makes it; the second goes on from its stale
    answer (simulated here): its initialise must fail, not wipe the tree (it did: the guard
    of its last removal was lost, and the first daemon's registration went with the tree)."""
    cluster.initialize(zk, name="first")
    monkeypatch.setattr(cluster, "is_initialized", lambda handler: False)  # the stale check
    with pytest.raises(Conflict, match="initialised by someone else"):
        cluster.initialize(zk, name="second")
    monkeypatch.undo()
    assert cluster.is_initialized(zk)
    assert zk.read("base.config.cluster_name") == "first"
