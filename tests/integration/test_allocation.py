"""Guarded placement on a real Zookeeper, through several API-like stores (each its own
session and mirror, pvc.zk.cache.CachedView): concurrent allocations onto one node never pass
its over-commit ratio, and the per-node loads kept from the mirror match a fresh count."""

import threading

import pytest

from pvc.errors import Conflict
from pvc.ops import allocation, cluster, fence, placement, vm, vm_move, vm_state
from pvc.zk.cache import CachedView, open_mirror
from pvc.zk.handler import ZKHandler
from tests.conftest import ZK_SECRET
from tests.integration.test_vm_ops import add_hypervisor, domain_xml

POLICY = placement.Policy("mem", 1.0)
STORES = 4


@pytest.fixture
def stores(zk, zk_hosts):
    """STORES views, each on a session and mirror of its own, over an initialised cluster."""
    cluster.initialize(zk)
    handlers = [
        ZKHandler(zk_hosts, connect_timeout=10, session_timeout=4, secret=ZK_SECRET).connect()
        for _ in range(STORES)
    ]
    yield [CachedView(handler, open_mirror(handler)) for handler in handlers]
    for handler in handlers:
        handler.close()


def caught_up(stores) -> None:
    """Every store's mirror shows what was written before (through any session): a read from
    Zookeeper comes after the watch events of earlier changes, and sync() after those."""
    for store in stores:
        store.zk.read("base.schema.version")
        assert store.mirror.sync()


def define_vms(store, count: int, node: str, memory: int, prefix: str = "vm") -> list[str]:
    caught_up([store])
    return [
        vm.define(store, POLICY, domain_xml(f"{prefix}{i}", memory=memory), node=node)["uuid"]
        for i in range(count)
    ]


def race(stores, uuids: list[str], verb) -> tuple[list[str], list[Conflict]]:
    """Runs `verb(store, uuid)` for every VM at once, spread over the stores; (the VMs it
    succeeded for, the refusals)."""
    caught_up(stores)  # every store knows every VM
    barrier = threading.Barrier(len(uuids))
    done: list[str] = []
    refused: list[Conflict] = []

    def run(store, uuid):
        barrier.wait()
        try:
            verb(store, uuid)
            done.append(uuid)
        except Conflict as conflict:
            refused.append(conflict)

    threads = [
        threading.Thread(target=run, args=(stores[i % len(stores)], uuid))
        for i, uuid in enumerate(uuids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return done, refused


def allocated(zk, node: str) -> int:
    """MiB of the VMs that hold memory on `node`, read from Zookeeper itself."""
    uuids = zk.children("base.domains")
    figures = zk.read_many([(k, u) for u in uuids for k in ("domain.node", "domain.state",
                                                            "domain.memory")])  # fmt: skip
    return sum(
        figures[i + 2]
        for i in range(0, len(figures), 3)
        if figures[i] == node and figures[i + 1] in placement.ACTIVE_STATES
    )


def test_twenty_concurrent_starts_never_over_commit_a_node(zk, stores):
    add_hypervisor(zk, "node1", mem_total=4096)
    uuids = define_vms(stores[0], 20, "node1", 512)  # 8 of them fit
    done, refused = race(stores, uuids, lambda store, uuid: vm_state.start(store, POLICY, uuid))
    assert len(done) + len(refused) == 20
    assert allocated(zk, "node1") == 512 * len(done) <= 4096
    assert any("would have" in conflict.message for conflict in refused)


def test_a_start_sees_the_start_another_store_just_made(zk, stores):
    add_hypervisor(zk, "node1", mem_total=1024)
    first, second = define_vms(stores[0], 2, "node1", 768)
    vm_state.start(stores[1], POLICY, first)
    with pytest.raises(Conflict, match="node node1 would have 1536 MiB allocated"):
        vm_state.start(stores[2], POLICY, second)


def test_racing_migrations_onto_one_node_never_over_commit_it(zk, stores):
    add_hypervisor(zk, "node1", mem_total=8192)
    add_hypervisor(zk, "node2", mem_total=8192)
    add_hypervisor(zk, "node3", mem_total=2048)  # 4 of the 12 fit
    uuids = define_vms(stores[0], 6, "node1", 512, "a") + define_vms(stores[0], 6, "node2", 512)
    for uuid in uuids:
        vm_state.start(stores[0], POLICY, uuid)
    done, refused = race(
        stores, uuids, lambda store, uuid: vm_move.migrate(store, POLICY, uuid, "node3")
    )
    assert len(done) + len(refused) == 12
    assert allocated(zk, "node3") == 512 * len(done) <= 2048


def test_recovery_and_starts_racing_onto_one_node_never_over_commit_it(zk, stores):
    add_hypervisor(zk, "node1", mem_total=8192)
    add_hypervisor(zk, "node2", mem_total=2048)  # the only node left for recovery and starts
    dead = define_vms(stores[0], 3, "node1", 512, "dead")
    for uuid in dead:
        vm_state.start(stores[0], POLICY, uuid)
    waiting = define_vms(stores[0], 3, "node2", 512)
    zk.write({("node.state.daemon", "node1"): "dead"})
    zk.delete(("node.alive", "node1"))
    recovery = threading.Thread(target=fence.recover_vms, args=(stores[1], POLICY, "node1"))
    recovery.start()
    race(stores[2:], waiting, lambda store, uuid: vm_state.start(store, POLICY, uuid))
    recovery.join(60)
    assert allocated(zk, "node2") <= 2048


def test_loads_kept_from_the_mirror_match_a_fresh_count(zk, stores):
    view = stores[1]
    add_hypervisor(zk, "node1", mem_total=8192)
    add_hypervisor(zk, "node2", mem_total=8192)
    allocation.node_loads(view)  # the tally exists before the changes below
    uuids = define_vms(stores[0], 6, "node1", 256)
    vm_state.start(stores[0], POLICY, uuids[0])
    vm_state.start(stores[0], POLICY, uuids[1])
    vm_move.migrate(stores[0], POLICY, uuids[1], "node2")
    vm_move.move(stores[0], POLICY, uuids[2], "node2")
    vm.undefine(stores[0], uuids[3])
    zk.write({("node.stats", "node2"): {"mem_total": 4096, "mem_free": 100, "load": 3.5}})
    add_hypervisor(zk, "node3")
    zk.delete(("node", "node1"))
    # the view's own session reads past the last change, then its mirror catches up to that
    assert not view.zk.exists(("node", "node1"))
    assert view.mirror.sync()
    assert allocation.node_loads(view) == allocation.node_loads(zk)
    assert allocation.node_loads(view)["node2"].mem_allocated == 256


def test_wait_for_through_a_mirror_wakes_on_the_report(zk, stores):
    add_hypervisor(zk, "node1")
    (uuid,) = define_vms(stores[0], 1, "node1", 128)
    vm_state.start(stores[0], POLICY, uuid)
    report = {("domain.observed", uuid): {"node": "node1", "state": "running"}}
    threading.Timer(0.3, lambda: zk.write(report)).start()
    record = vm_state.wait_for(stores[1], uuid, ("start",), timeout=10)
    assert record["observed"] == {"node": "node1", "state": "running"}
    with pytest.raises(vm_state.StillGoing, match="still on its way to stop after 0.2 s"):
        vm_state.wait_for(stores[1], uuid, ("stop",), timeout=0.2, goal="stop")
