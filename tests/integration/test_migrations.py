"""Schema migrations: a tree written in the original v0.7 layout upgrades to the current one,
and an open version-2 tree is closed to sessions without the cluster secret (version 3)."""

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from pvc.errors import ConfigError, Conflict
from pvc.ops import cluster
from pvc.zk import access, migrations, schema
from tests.conftest import ZK_SECRET


@pytest.fixture
def v0_tree(zk_hosts):
    """The base keys as the original PVC v0.7 wrote them, with a node and a VM."""
    raw = KazooClient(hosts=zk_hosts, auth_data=[("digest", f"pvc:{ZK_SECRET}")])  # no ACLs
    raw.start(timeout=5)
    for path, value in {
        "/primary_node": b"hv1",
        "/maintenance": b"true",
        "/upstream_ip": b"10.0.0.10/24",
        "/nodes/hv1/daemonstate": b"run",
        "/domains/0b8e-uuid": b"web1",
        "/networks": b"",
        "/ceph": b"",
        "/locks/primary_node": b"",
    }.items():
        raw.create(path, value, makepath=True)
    yield raw
    raw.stop()
    raw.close()


def test_v0_tree_upgrades_to_current(zk, v0_tree):
    assert migrations.tree_version(zk) == 0
    assert migrations.upgrade(zk) == [0, 1, 2, 3, 4]
    assert migrations.tree_version(zk) == schema.VERSION
    assert zk.exists("base.jobs") and zk.exists("base.names.domains")  # version 2
    assert zk.exists("base.ceph.pools") and zk.exists("base.ceph.volumes")  # version 4
    assert all(zk.exists(key) for key in schema.PROVISIONER_TREE)  # version 5
    assert zk.read("base.config.primary_node") == "hv1"
    assert zk.read("base.config.maintenance") is True
    assert zk.read("base.config.upstream_ip") == "10.0.0.10/24"
    assert not v0_tree.exists("/primary_node")
    assert not v0_tree.exists("/maintenance")
    assert zk.read(("node.state.daemon", "hv1")) == "run"  # other data untouched
    assert zk.children("base.domains") == ["0b8e-uuid"]
    assert migrations.upgrade(zk) == []  # nothing left to do
    assert cluster.status(zk)["primary_node"] == "hv1"


def test_racing_upgrades_apply_each_step_once(zk_hosts, zk, v0_tree):
    from pvc.zk.handler import ZKHandler

    other = ZKHandler(zk_hosts, secret=ZK_SECRET).connect()
    try:
        steps = migrations.upgrade(zk) + migrations.upgrade(other)
    finally:
        other.close()
    assert steps == [0, 1, 2, 3, 4]
    assert zk.read("base.config.primary_node") == "hv1"


def test_uninitialised_tree_has_no_version(zk):
    assert migrations.tree_version(zk) is None
    assert migrations.upgrade(zk) == []


def test_newer_tree_is_refused(zk):
    cluster.initialize(zk)
    zk.write({"base.schema.version": schema.VERSION + 1})
    with pytest.raises(Conflict, match="newer than this pvc"):
        migrations.upgrade(zk)


def all_nodes(client: KazooClient, path: str = "/") -> list[str]:
    """Every node at and below `path` of the client's chroot."""
    found, stack = [], [path]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(f"{current.rstrip('/')}/{name}" for name in client.get_children(current))
    return found


def test_an_open_version_2_tree_is_closed_node_by_node(zk, v0_tree):
    """Version 2 as an older pvc left it (every node world:anyone, /private closed): the step
    to version 3 sets the cluster's ACL on every node, ephemerals and /private included, and
    a stranger can then neither read nor write any of it."""
    migrations.upgrade(zk)  # to the current version: closes what v0_tree made
    zk.write({"base.schema.version": 2}, delete=reversed(schema.PROVISIONER_TREE))
    open_acl = list(OPEN_ACL_UNSAFE)
    for path in all_nodes(v0_tree):  # reopen everything, as version 2 had it
        v0_tree.set_acls(path, open_acl)
    v0_tree.create("/nodes/hv1/alive", b"x", ephemeral=True)  # a live daemon's node
    zk.write_private(("private.ipmi", "hv1"), {"host": "10.0.0.9", "password": "hunter22"})
    assert migrations.upgrade(zk) == [2, 3, 4]
    closed = access.acl(ZK_SECRET)
    for path in all_nodes(v0_tree):
        assert list(v0_tree.get_acls(path)[0]) == closed, path
    assert zk.read_private(("private.ipmi", "hv1"))["password"] == "hunter22"
    stranger = KazooClient(hosts=zk.hosts)
    stranger.start(timeout=10)
    try:
        for path in ("/config/primary_node", "/nodes/hv1/alive", "/schema/version"):
            with pytest.raises(NoAuthError):
                stranger.get(path)
            with pytest.raises(NoAuthError):
                stranger.set(path, b"evil")
        with pytest.raises(NoAuthError):
            stranger.create("/domains/planted", b"evil")
    finally:
        stranger.stop()
        stranger.close()


def test_closing_the_tree_needs_the_secret(zk_hosts, v0_tree):
    from pvc.zk.handler import ZKHandler

    keyless = ZKHandler(zk_hosts).connect()  # the chroot is still open: it may connect
    try:
        with pytest.raises(ConfigError, match="zookeeper.secret"):
            migrations.upgrade(keyless)
        assert migrations.tree_version(keyless) == 2  # versions 0 and 1 need no secret
    finally:
        keyless.close()
