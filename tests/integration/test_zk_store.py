"""The Store contract (pvc.zk.store): ZKHandler and CachedView answer alike on a real
Zookeeper, and what only a session has is reached through `.zk`."""

import pytest

from pvc.ops import cluster
from pvc.zk.cache import CachedView, open_mirror
from pvc.zk.handler import ZKHandler
from pvc.zk.locks import exclusive_lock
from pvc.zk.store import Store
from tests.conftest import ZK_SECRET


@pytest.fixture(params=["handler", "view"])
def store(request, zk: ZKHandler) -> Store:
    cluster.initialize(zk)
    return zk if request.param == "handler" else CachedView(zk, open_mirror(zk))


def test_a_store_reads_its_own_writes_and_deletes(store: Store):
    uuid = "00000000-0000-4000-8000-000000000001"
    store.write({("domain", uuid): "one", ("domain.tags", uuid): ["a"]})
    assert store.read(("domain.tags", uuid)) == ["a"]
    assert store.read_many([("domain", uuid), ("domain.state", uuid)]) == ["one", None]
    assert store.read_versioned(("domain", uuid)) == ("one", 0)
    assert store.exists(("domain", uuid)) and store.children(("domain", uuid)) == ["tags"]
    store.write({("domain", uuid): "two"}, expect={("domain", uuid): 0})
    assert store.read(("domain", uuid)) == "two"
    store.delete(("domain", uuid))
    assert not store.exists(("domain", uuid)) and store.children("base.domains") == []


def test_a_store_gives_its_handler_for_what_only_a_session_has(store: Store, zk: ZKHandler):
    assert store.zk is zk
    assert not hasattr(store, "claim_ephemeral") or store is zk  # no posing as a handler
    with exclusive_lock(store, "lock.primary_sync", 5) as lock:
        assert lock.held


def test_a_view_keeps_a_built_object_until_its_group_changes(zk: ZKHandler):
    cluster.initialize(zk)
    view = CachedView(zk, open_mirror(zk))
    uuid = "00000000-0000-4000-8000-000000000002"
    view.write({("domain", uuid): "one"})
    builds = []

    def build() -> str:
        builds.append(1)
        return view.read(("domain", uuid))

    assert view.memoized(("domain", uuid), build) == "one"
    assert view.memoized(("domain", uuid), build) == "one" and len(builds) == 1
    zk.write({("domain.state", uuid): "start"})  # another writer, under the same VM
    assert view.mirror.sync()
    assert view.memoized(("domain", uuid), build) == "one" and len(builds) == 2


def test_after_catch_up_a_store_sees_another_sessions_writes(store: Store, zk_hosts: str):
    """What a lookup does before it answers "does not exist": another session's write made
    before the call is seen after it, every time (a view's mirror would otherwise lag)."""
    other = ZKHandler(zk_hosts, secret=ZK_SECRET).connect()
    try:
        for round_ in range(30):
            uuid = f"00000000-0000-4000-8000-{round_:012d}"
            other.write({("domain", uuid): f"vm{round_}"})
            store.catch_up()
            assert store.exists(("domain", uuid)) and store.read(("domain", uuid)) == f"vm{round_}"
    finally:
        other.close()
