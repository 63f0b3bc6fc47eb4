"""Fencing's cluster operations on a real Zookeeper: the fence log, recovery of a dead node's
VMs, and the private key that holds IPMI credentials."""

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from pvc.errors import AccessDenied, NotFound
from pvc.limits import REASON_MAX
from pvc.ops import cluster, fence, vm
from pvc.ops import node as node_ops
from pvc.zk.handler import ZKHandler
from tests.integration.test_vm_ops import POLICY, add_hypervisor, define, nodes  # noqa: F401


def place(zk, name, node, state="start", observed_state="running", lastnode=""):
    """Puts a VM (defined now unless it exists) on `node`, as its daemon would report it."""
    try:
        uuid = vm.find(zk, name)
    except NotFound:
        uuid = define(zk, name)
    zk.write(
        {
            ("domain.node", uuid): node,
            ("domain.state", uuid): state,
            ("domain.lastnode", uuid): lastnode,
            ("domain.observed", uuid): {"node": node, "state": observed_state},
        }
    )
    return uuid


@pytest.fixture
def dead(nodes):  # noqa: F811
    """The three-node cluster with node3 dead: its liveness node is gone."""
    nodes.delete(("node.alive", "node3"))
    return nodes


def test_recovery_restarts_what_should_run_and_releases_the_dead_node(dead):
    zk = dead
    running = place(zk, "running", "node3")
    elsewhere = place(zk, "back-home", "node3", lastnode="node2")
    stopped = place(zk, "stopped", "node3", state="stop", observed_state="shutoff")
    # migrating from node3 to node2 when node3 died: node2 waits for node3 to let go
    arriving = place(zk, "arriving", "node2", state="migrate")
    zk.write({("domain.observed", arriving): {"node": "node3", "state": "running"}})
    # migrating from node1 to node3: it still runs on node1 and stays there
    leaving = place(zk, "leaving", "node3", state="migrate")
    zk.write({("domain.observed", leaving): {"node": "node1", "state": "running"}})
    zk.write({("node.state.daemon", "node3"): "dead"})

    lines = fence.recover_vms(zk, POLICY, "node3")

    def record(uuid):
        return vm.info(zk, uuid)

    assert record(running)["node"] in ("node1", "node2")
    assert (record(running)["state"], record(running)["lastnode"]) == ("start", "node3")
    assert record(running)["observed"] == {"node": "node3", "state": "fenced"}
    assert record(elsewhere)["lastnode"] == "node2"  # an earlier migration's home is kept
    assert (record(stopped)["node"], record(stopped)["state"]) == ("node3", "stop")
    assert record(arriving)["observed"]["state"] == "fenced"  # node2 may start it now
    assert (record(arriving)["node"], record(arriving)["state"]) == ("node2", "migrate")
    assert (record(leaving)["node"], record(leaving)["state"]) == ("node1", "start")
    assert zk.read(("node.state.domain", "node3")) == "flushed"
    assert any("running starts on" in line for line in lines)
    assert any("leaving keeps running on node1" in line for line in lines)


def test_recovery_without_room_stops_the_vm_with_autostart(dead):
    zk = dead
    big = define(zk, "big", memory=4500)
    place(zk, "big", "node3")
    fence.recover_vms(zk, POLICY, "node3")  # more than any node's 4096 MiB
    record = vm.info(zk, big)
    assert (record["node"], record["state"], record["node_autostart"]) == ("node3", "stop", True)


def test_recovery_respects_the_node_limit(dead):
    zk = dead
    define(zk, "pinned", limit=["node2", "node3"])
    uuid = place(zk, "pinned", "node3")
    fence.recover_vms(zk, POLICY, "node3")
    assert vm.info(zk, uuid)["node"] == "node2"


def test_a_node_that_registered_again_keeps_its_vms(nodes):  # noqa: F811
    zk = nodes  # node3's liveness node is there: its daemon is back
    uuid = place(zk, "mine", "node3")
    lines = fence.recover_vms(zk, POLICY, "node3")
    assert lines == ["node3 registered again: the rest stays with it"]
    record = vm.info(zk, uuid)
    assert (record["node"], record["observed"]["node"]) == ("node3", "node3")


def test_a_vm_shutting_down_on_the_dead_node_ends_stopped(dead):
    uuid = place(dead, "going", "node3", state="shutdown")
    fence.recover_vms(dead, POLICY, "node3")
    assert (vm.info(dead, uuid)["node"], vm.info(dead, uuid)["state"]) == ("node3", "stop")


def test_the_fence_log_keeps_the_newest_entries_and_shows_in_node_info(nodes):  # noqa: F811
    zk = nodes
    for index in range(fence.LOG_ENTRIES + 5):
        fence.record(zk, "node3", "dead", f"try {index}")
    fence.record(zk, "node3", "fenced", "power off verified", state="fenced")
    log = node_ops.info(zk, "node3")["fence_log"]
    assert len(log) == fence.LOG_ENTRIES
    assert (log[-1]["event"], log[-1]["detail"]) == ("fenced", "power off verified")
    status = cluster.status(zk)
    assert status["fencing"] == [{"name": "node3", "daemon_state": "fenced", "last_event": log[-1]}]


def test_a_fence_log_entry_is_one_bounded_line(nodes):  # noqa: F811
    """A BMC's words, or many recovered VMs, go into an entry on one line each."""
    fence.record(nodes, "node3", "fence-failed", "ipmitool:\n" + "error\r\n" * 100_000,
                 steps=["0.01 s: power status failed:\n" + "x\n" * 100_000])  # fmt: skip
    entry = node_ops.info(nodes, "node3")["fence_log"][-1]
    for text in (entry["detail"], *entry["steps"]):
        assert "\n" not in text and "\r" not in text and len(text) <= REASON_MAX
    assert entry["detail"].startswith("ipmitool: error error")


def test_ipmi_credentials_are_readable_only_with_the_secret(zk_hosts):
    # the stranger connects first: once the owner has closed the chroot, it could not at all
    stranger = ZKHandler(zk_hosts, connect_timeout=10, session_timeout=4).connect()
    owner = ZKHandler(zk_hosts, connect_timeout=10, session_timeout=4, secret="s3cret").connect()
    with pytest.raises(AccessDenied):
        ZKHandler(zk_hosts, connect_timeout=10, session_timeout=4, secret="nope").connect()
    try:
        bmc = {"host": "10.0.0.9", "port": 623, "user": "admin", "password": "hunter22"}
        owner.write_private(("private.ipmi", "node1"), bmc)
        owner.write_private(("private.ipmi", "node1"), bmc | {"password": "changed"})
        assert owner.read_private(("private.ipmi", "node1"))["password"] == "changed"
        assert stranger.read_private(("private.ipmi", "node1")) is None
        raw = KazooClient(hosts=zk_hosts)
        raw.start(10)
        try:
            with pytest.raises(NoAuthError):
                raw.get("/private/ipmi/node1")
        finally:
            raw.stop()
        with pytest.raises(Exception, match="zookeeper.secret"):
            stranger.write_private(("private.ipmi", "node2"), bmc)
        # nobody without the secret can plant a key (a fake BMC) beside it
        with pytest.raises(NoAuthError):
            stranger.client.create("/private/ipmi/node2", b'{"host": "evil"}')
        # and a key that is not protected by the secret (an open ACL) is not trusted
        owner.client.create("/private/ipmi/node3", b'{"host": "evil"}', acl=OPEN_ACL_UNSAFE)
        assert owner.read_private(("private.ipmi", "node3")) is None
        assert owner.read_private(("private.ipmi", "nobody")) is None
    finally:
        for handler in (owner, stranger):
            handler.close()
