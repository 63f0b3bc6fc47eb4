"""Schema migrations: a tree written in the original v0.7 layout upgrades to the current one."""

import pytest
from kazoo.client import KazooClient

from pvc.errors import Conflict
from pvc.ops import cluster
from pvc.zk import migrations, schema


@pytest.fixture
def v0_tree(zk_hosts):
    """The base keys as the original PVC v0.7 wrote them, with a node and a VM."""
    raw = KazooClient(hosts=zk_hosts)
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
    assert migrations.upgrade(zk) == [0, 1]
    assert migrations.tree_version(zk) == schema.VERSION
    assert zk.exists("base.jobs") and zk.exists("base.names.domains")  # version 2
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

    other = ZKHandler(zk_hosts).connect()
    try:
        steps = migrations.upgrade(zk) + migrations.upgrade(other)
    finally:
        other.close()
    assert steps == [0, 1]
    assert zk.read("base.config.primary_node") == "hv1"


def test_uninitialised_tree_has_no_version(zk):
    assert migrations.tree_version(zk) is None
    assert migrations.upgrade(zk) == []


def test_newer_tree_is_refused(zk):
    cluster.initialize(zk)
    zk.write({"base.schema.version": schema.VERSION + 1})
    with pytest.raises(Conflict, match="newer than this pvc"):
        migrations.upgrade(zk)
