"""pvc.zk.access on a real Zookeeper: the tree is readable and writable only with the cluster
secret, whoever asks (a bare kazoo client, a wrong secret, a pvc session without one), and
everything pvc creates (transactions, ephemerals, locks, the chroot) is closed."""

import threading
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

from pvc.errors import AccessDenied
from pvc.ops import cluster
from pvc.zk import access
from pvc.zk.cache import open_mirror
from pvc.zk.handler import ZKHandler
from pvc.zk.locks import exclusive_lock
from tests.conftest import ZK_SECRET

CLOSED = access.acl(ZK_SECRET)


def kazoo(hosts: str, secret: str | None = None) -> KazooClient:
    client = KazooClient(hosts=hosts, auth_data=access.auth_data(secret))
    client.start(timeout=10)
    return client


def every_node(client: KazooClient) -> list[str]:
    found, stack = [], ["/"]
    while stack:
        path = stack.pop()
        found.append(path)
        stack.extend(f"{path.rstrip('/')}/{name}" for name in client.get_children(path))
    return found


@pytest.fixture
def tree(zk):
    """An initialised cluster with a VM, a live ephemeral claim and a held lock."""
    cluster.initialize(zk)
    zk.write({("domain", "u1"): "vm1", ("domain.state", "u1"): "start"})
    assert zk.claim_ephemeral(("node.alive", "node1"), "session")
    with exclusive_lock(zk, "lock.primary_node", 5):
        yield zk


def test_everything_pvc_creates_is_closed_chroot_included(tree, zk_hosts):
    owner = kazoo(zk_hosts, ZK_SECRET)
    try:
        nodes = every_node(owner)
        assert any(path.startswith("/locks/primary_node/") for path in nodes)  # the contender
        assert "/nodes/node1/alive" in nodes
        for path in nodes:
            assert list(owner.get_acls(path)[0]) == CLOSED, path
    finally:
        owner.stop()
        owner.close()


@pytest.mark.parametrize("secret", [None, "not-the-cluster-secret"])
def test_a_kazoo_client_without_the_secret_can_neither_read_nor_write(tree, zk_hosts, secret):
    stranger = kazoo(zk_hosts, secret)
    try:
        for path in ("/", "/config/primary_node", "/domains/u1", "/nodes/node1/alive"):
            with pytest.raises(NoAuthError):
                stranger.get(path)
        with pytest.raises(NoAuthError):
            stranger.get_children("/domains")
        with pytest.raises(NoAuthError):
            stranger.set("/config/primary_node", b"stranger")
        with pytest.raises(NoAuthError):
            stranger.delete("/domains/u1/state")
        for path in ("/planted", "/domains/planted", "/locks/primary_node/lock-0"):
            with pytest.raises(NoAuthError):
                stranger.create(path, b"evil")
    finally:
        stranger.stop()
        stranger.close()
    assert tree.read("base.config.primary_node") == "none"


@pytest.mark.parametrize("secret", [None, "not-the-cluster-secret"])
def test_a_pvc_session_without_the_secret_gets_one_clear_line(tree, zk_hosts, secret):
    with pytest.raises(AccessDenied) as refused:
        ZKHandler(zk_hosts, connect_timeout=10, secret=secret).connect()
    assert str(refused.value) == access.REFUSED
    assert "\n" not in str(refused.value)


def test_a_refusal_later_in_the_session_reads_and_writes_as_access_denied(zk, zk_hosts):
    """A key another secret closed (reads, multi-reads, transactions): AccessDenied each."""
    cluster.initialize(zk)
    foreign = KazooClient(hosts=zk_hosts, auth_data=access.auth_data(ZK_SECRET))
    foreign.start(timeout=10)
    try:
        foreign.delete("/config/cluster_name")
        foreign.create("/config/cluster_name", b"x", acl=access.acl("another-secret"))
    finally:
        foreign.stop()
        foreign.close()
    with pytest.raises(AccessDenied, match="zookeeper.secret"):
        zk.read("base.config.cluster_name")
    with pytest.raises(AccessDenied, match="zookeeper.secret"):
        zk.read_many(["base.config.maintenance", "base.config.cluster_name"])
    with pytest.raises(AccessDenied, match="zookeeper.secret"):
        zk.write({"base.config.cluster_name": "mine"})
    assert zk.read("base.config.maintenance") is False  # the rest still works


def test_a_missing_chroot_is_created_closed_and_an_open_one_is_closed(zk_server):
    chroot = f"/fresh-{uuid.uuid4().hex[:8]}"
    handler = ZKHandler(zk_server + chroot, connect_timeout=10, secret=ZK_SECRET).connect()
    handler.close()
    admin = kazoo(zk_server, ZK_SECRET)
    try:
        assert list(admin.get_acls(chroot)[0]) == CLOSED
        admin.create(chroot + "-open", b"", acl=OPEN_ACL_UNSAFE)
        assert list(admin.get_acls(chroot + "-open")[0]) == list(OPEN_ACL_UNSAFE)
        ZKHandler(zk_server + chroot + "-open", secret=ZK_SECRET).connect().close()
        assert list(admin.get_acls(chroot + "-open")[0]) == CLOSED
        # a chroot closed to another user is left alone, and refuses this session
        other_acl = [make_digest_acl("someone", "else", all=True)]
        admin.create(chroot + "-theirs", b"", acl=other_acl)
        with pytest.raises(AccessDenied):
            ZKHandler(zk_server + chroot + "-theirs", secret=ZK_SECRET).connect()
    finally:
        admin.stop()
        admin.close()


def test_a_new_session_authenticates_again_and_the_mirror_follows(zk, zk_hosts):
    """The session expires (another client takes it over and closes it, as a server timeout
    would): kazoo starts a new one, authenticated before its first request, and the mirror,
    whose persistent watch is on closed nodes, reloads and follows changes again."""
    cluster.initialize(zk)
    mirror = open_mirror(zk)
    assert mirror.loaded
    lost, connected = threading.Event(), threading.Event()
    zk.add_listener(lambda state: state == "lost" and lost.set())
    zk.add_listener(lambda state: state == "connected" and lost.is_set() and connected.set())
    old_session = zk.session_id
    session_id, password = zk.client.client_id
    intruder = KazooClient(hosts=zk_hosts, client_id=(session_id, password))
    intruder.start(timeout=10)
    intruder.stop()
    intruder.close()
    assert lost.wait(15)
    assert connected.wait(15) and zk.session_id != old_session  # kazoo's new session
    zk.write({"base.config.maintenance": True})  # a closed node: read and written again
    assert zk.read("base.config.maintenance") is True
    assert mirror.wait(lambda: mirror.get("/config/maintenance") == b"true", timeout=15)
    mirror.close()
