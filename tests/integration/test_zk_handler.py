"""ZKHandler against a real Zookeeper: typed values, transactions, children, deletes, watches."""

import threading
import time

import pytest

from pvc.errors import ConcurrentChange, Unavailable
from pvc.ops import cluster
from pvc.zk.cache import CachedView, open_mirror
from pvc.zk.handler import ZKHandler
from tests.conftest import ZK_SECRET


def test_typed_values_round_trip(zk):
    zk.write(
        {
            ("node.keepalive", "n1"): 12.5,
            ("node.static", "n1"): {"cores": 4, "arch": "x86_64"},
            "base.config.maintenance": True,
            "base.schema.version": 7,
        }
    )
    assert zk.read(("node.keepalive", "n1")) == 12.5
    assert zk.read(("node.static", "n1")) == {"cores": 4, "arch": "x86_64"}
    assert zk.read("base.config.maintenance") is True
    assert zk.read("base.schema.version") == 7
    assert zk.read(("node.keepalive", "missing")) is None
    assert zk.read_many(["base.schema.version", ("node.keepalive", "n1"), ("node", "x")]) == [
        7,
        12.5,
        None,
    ]


def test_write_creates_missing_parents_in_the_same_transaction(zk):
    zk.write({("node.state.daemon", "n9"): "run"})
    assert zk.children("base.nodes") == ["n9"]
    assert zk.children(("node", "n9")) == ["daemonstate"]


def test_failed_transaction_writes_nothing(zk):
    zk.write({("node.state.daemon", "a"): "init"})
    _, version = zk.read_versioned(("node.state.daemon", "a"))
    zk.write({("node.state.daemon", "a"): "run"})  # someone else changes it
    with pytest.raises(ConcurrentChange):
        zk.write(
            {("node.state.daemon", "a"): "stop", ("node.state.router", "a"): "primary"},
            expect={("node.state.daemon", "a"): version},
        )
    assert zk.read(("node.state.daemon", "a")) == "run"
    assert not zk.exists(("node.state.router", "a"))


def test_expect_absent_fails_when_the_key_appeared(zk):
    zk.write({("node.mode", "b"): "coordinator"})
    with pytest.raises(ConcurrentChange):
        zk.write({("node.state.router", "b"): "x"}, expect={("node.mode", "b"): -1})
    assert not zk.exists(("node.state.router", "b"))
    zk.write({("node.state.router", "b"): "secondary"}, expect={("node.version", "b"): -1})
    assert zk.read(("node.state.router", "b")) == "secondary"


def test_expect_absent_fails_when_the_key_is_in_a_deleted_subtree(zk):
    """A write that deletes a subtree holding a key it expects absent must fail, not delete
    the key unchecked (two daemons initialising at once: the second wiped the first's tree)."""
    zk.write({("node.mode", "b"): "coordinator", ("node.state.router", "b"): "primary"})
    with pytest.raises(ConcurrentChange):
        zk.write({}, delete=[("node", "b")], expect={("node.mode", "b"): -1})
    assert zk.read(("node.mode", "b")) == "coordinator"
    zk.write({}, delete=[("node", "b")], expect={("node.version", "b"): -1})
    assert not zk.exists(("node", "b"))


def test_concurrent_read_modify_write_one_winner(zk_hosts, zk):
    """Many writers increment a counter with version checks: no increment is lost."""
    zk.write({"base.schema.version": 0})
    clients = [ZKHandler(zk_hosts, secret=ZK_SECRET).connect() for _ in range(4)]
    conflicts = []

    def bump(handler):
        for _ in range(15):
            while True:
                value, version = handler.read_versioned("base.schema.version")
                try:
                    handler.write(
                        {"base.schema.version": value + 1}, expect={"base.schema.version": version}
                    )
                    break
                except ConcurrentChange:
                    conflicts.append(1)

    threads = [threading.Thread(target=bump, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for handler in clients:
        handler.close()
    assert zk.read("base.schema.version") == 60


def test_recursive_delete_and_replace_in_one_write(zk):
    zk.write({("node.state.daemon", "c"): "run", ("node.keepalive", "c"): 1.0})
    zk.write({("node.mode", "c"): "hypervisor"}, delete=[("node", "c")])
    assert zk.children(("node", "c")) == ["daemonmode"]
    zk.delete(("node", "c"))
    assert zk.children("base.nodes") == []
    zk.delete(("node", "never-existed"))  # deleting nothing is fine


def test_watches_see_changes(zk):
    seen = []
    changed = threading.Event()

    def on_data(value, version):
        seen.append((value, version))
        if len(seen) == 3:
            changed.set()

    zk.watch_data("base.config.primary_node", on_data)
    zk.write({"base.config.primary_node": "node1"})
    zk.write({"base.config.primary_node": "node2"})
    assert changed.wait(5)
    assert seen == [(None, -1), ("node1", 0), ("node2", 1)]

    names = []
    zk.watch_children("base.nodes", lambda children: names.append(children))
    zk.write({("node", "z"): ""})
    deadline = time.monotonic() + 5
    while names[-1] != ["z"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert names[0] == [] and names[-1] == ["z"]


def test_unreachable_zookeeper_fails_within_the_connect_timeout():
    from tests.conftest import free_port

    started = time.monotonic()
    with pytest.raises(Unavailable, match="cannot reach Zookeeper"):
        ZKHandler(f"127.0.0.1:{free_port()}", connect_timeout=1).connect()
    assert time.monotonic() - started < 3


def test_session_state_listener(zk_hosts):
    handler = ZKHandler(zk_hosts, secret=ZK_SECRET)
    states = []
    handler.add_listener(states.append)
    handler.connect()
    handler.close()
    assert states[0] == "connected" and states[-1] == "lost"


def _counting(monkeypatch, zk) -> list[list[str]]:
    """Records every batch of existence questions the handler asks Zookeeper."""
    batches: list[list[str]] = []
    ask = zk.exists_batch

    def counted(paths):
        paths = list(paths)
        batches.append(paths)
        return ask(paths)

    monkeypatch.setattr(zk, "exists_batch", counted)
    monkeypatch.setattr(zk.client, "exists", lambda *a, **k: pytest.fail("one exists() per key"))
    return batches


def vm_record(uuid: str, name: str) -> dict:
    keys = ("domain.state", "domain.node", "domain.memory", "domain.tags", "domain.observed")
    return {("domain", uuid): name, ("name.domain", name): uuid} | {
        (key, uuid): "x" for key in keys
    }


def test_write_asks_what_exists_in_one_batch(zk, monkeypatch):
    cluster.initialize(zk)
    batches = _counting(monkeypatch, zk)
    uuid = "00000000-0000-4000-8000-000000000001"
    zk.write(vm_record(uuid, "one"), expect={("domain", uuid): -1, ("name.domain", "one"): -1})
    # the VM's keys lie below a key expected absent: only the parents above are asked
    assert len(batches) == 1 and set(batches[0]) == {"/domains", "/names", "/names/domains"}
    zk.write({("domain.state", uuid): "start", ("domain.lastnode", uuid): "n1"})
    assert len(batches) == 2
    assert zk.read(("domain.state", uuid)) == "start"
    assert zk.read(("domain.lastnode", uuid)) == "n1"


def test_write_through_a_loaded_mirror_asks_nothing(zk, monkeypatch):
    cluster.initialize(zk)
    view = CachedView(zk, open_mirror(zk))
    batches = _counting(monkeypatch, zk)
    uuid = "00000000-0000-4000-8000-000000000002"
    view.write(vm_record(uuid, "two"), expect={("domain", uuid): -1, ("name.domain", "two"): -1})
    view.write({("domain.state", uuid): "start", ("domain.lastnode", uuid): "n1"})
    view.delete(("domain", uuid))
    assert batches == []
    assert view.read(("name.domain", "two")) == uuid and not view.exists(("domain", uuid))
    assert zk.read_versioned(("domain.state", uuid)) == (None, -1)


def test_write_planned_on_a_lagging_mirror_is_redone_once(zk):
    """The mirror has not seen a key appear (or vanish) yet: the transaction fails on that
    assumption alone and is planned again from Zookeeper's answers."""
    cluster.initialize(zk)
    mirror = open_mirror(zk)
    zk.write({("node.mode", "n1"): "coordinator", ("node.stats", "n1"): {"load": 1}})
    assert mirror.sync()
    mirror._data.pop("/nodes/n1/daemonmode")  # as if its creation had not reached the mirror
    mirror._data["/nodes/n1/routerstate"] = b"primary"  # nor this one's removal
    zk.write(
        {("node.mode", "n1"): "hypervisor", ("node.state.router", "n1"): "client"},
        mirror=mirror,
    )
    assert zk.read(("node.mode", "n1")) == "hypervisor"
    assert zk.read(("node.state.router", "n1")) == "client"
    # a caller's own check that fails is not redone: nothing is written
    _, version = zk.read_versioned(("node.mode", "n1"))
    with pytest.raises(ConcurrentChange):
        zk.write(
            {("node.mode", "n1"): "x"}, expect={("node.mode", "n1"): version + 1}, mirror=mirror
        )
    assert zk.read(("node.mode", "n1")) == "hypervisor"
    mirror.close()
