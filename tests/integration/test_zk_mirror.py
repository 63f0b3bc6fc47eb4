"""The in-memory mirror of Zookeeper subtrees (pvc.zk.mirror) on a real Zookeeper."""

import logging
import subprocess
import threading
import time

from kazoo.client import KazooClient

from pvc.ops import cluster
from pvc.zk.cache import SYNC_TIMEOUT, CachedView, open_mirror
from pvc.zk.handler import ZKHandler, resolve
from pvc.zk.mirror import TreeMirror
from tests.conftest import REPO, ZK_SECRET, free_port


def wait_until(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def vm_values(uuid: str, name: str, state: str = "stop") -> dict:
    return {
        ("domain", uuid): name,
        ("domain.state", uuid): state,
        ("domain.node", uuid): "node1",
        ("name.domain", name): uuid,
    }


def uuid_of(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012d}"


def test_loads_an_existing_tree_and_follows_changes(zk: ZKHandler):
    cluster.initialize(zk)
    for index in range(50):
        zk.write(vm_values(uuid_of(index), f"vm{index}"))
    mirror = TreeMirror(zk.client, ["/domains", "/names"])
    events: list[tuple[str, bytes | None]] = []
    mirror.listen(lambda path, data: events.append((path, data)))
    assert mirror.start(30)
    assert mirror.children("/domains") == sorted(uuid_of(i) for i in range(50))
    assert mirror.get(f"/domains/{uuid_of(7)}") == b"vm7"
    assert mirror.get(f"/domains/{uuid_of(7)}/state") == b"stop"
    assert mirror.get("/names/domains/vm7") == uuid_of(7).encode()

    events.clear()
    zk.write({("domain.state", uuid_of(7)): "start"})
    assert wait_until(lambda: mirror.get(f"/domains/{uuid_of(7)}/state") == b"start")
    assert (f"/domains/{uuid_of(7)}/state", b"start") in events

    zk.write(vm_values(uuid_of(99), "vm99", "start"))  # a new VM, several keys at once
    assert wait_until(lambda: mirror.get(f"/domains/{uuid_of(99)}/node") == b"node1")
    assert uuid_of(99) in mirror.children("/domains")

    zk.write({}, delete=[("domain", uuid_of(7)), ("name.domain", "vm7")])
    assert wait_until(lambda: uuid_of(7) not in mirror.children("/domains"))
    assert mirror.get(f"/domains/{uuid_of(7)}/state") is None
    assert mirror.get("/names/domains/vm7") is None
    assert (f"/domains/{uuid_of(7)}", None) in events
    mirror.close()


def test_follows_a_root_that_is_removed_and_created_again(zk: ZKHandler):
    mirror = TreeMirror(zk.client, ["/domains"])
    assert mirror.start(10)  # not initialised: nothing there yet
    assert mirror.children("/domains") == []
    cluster.initialize(zk)
    zk.write(vm_values(uuid_of(1), "one"))
    assert wait_until(lambda: mirror.get(f"/domains/{uuid_of(1)}") == b"one")
    cluster.initialize(zk, overwrite=True)  # removes every root and creates them again
    assert wait_until(lambda: mirror.children("/domains") == [])
    zk.write(vm_values(uuid_of(2), "two"))
    assert wait_until(lambda: mirror.get(f"/domains/{uuid_of(2)}/state") == b"stop")
    mirror.close()


def test_reloads_after_the_session_is_lost(zk: ZKHandler, zk_hosts: str, caplog):
    cluster.initialize(zk)
    zk.write(vm_values(uuid_of(1), "one"))
    mirror = TreeMirror(zk.client, ["/domains"])
    assert mirror.start(10)
    # as a reread whose barrier went out as the session closed (never answered, never failed)
    # leaves its events behind: after the reload, later events must still be followed
    with mirror._events_lock:
        mirror._events.append(f"/domains/{uuid_of(1)}/state")
    lost = threading.Event()
    zk.add_listener(lambda state: state == "lost" and lost.set())
    # Expire the session the way a server does: another client takes it over and closes it.
    session_id, password = zk.client.client_id
    other = KazooClient(hosts=zk_hosts)
    other._session_id, other._session_passwd = session_id, password
    other.start(10)
    other.stop()
    assert lost.wait(15)
    writer = ZKHandler(zk_hosts, connect_timeout=10, session_timeout=4, secret=ZK_SECRET).connect()
    try:
        # changed while the mirror's session was gone: no watch reports these
        writer.write({("domain.state", uuid_of(1)): "start"})
        writer.write(vm_values(uuid_of(2), "two"))
        assert wait_until(lambda: mirror.get(f"/domains/{uuid_of(1)}/state") == b"start", 20)
        assert wait_until(lambda: mirror.get(f"/domains/{uuid_of(2)}") == b"two", 5)
        # and it keeps following on the new session
        writer.write({("domain.state", uuid_of(2)): "start"})
        assert wait_until(lambda: mirror.get(f"/domains/{uuid_of(2)}/state") == b"start")
        # kazoo tells every watch of the lost session, with no path: nothing may fail on it
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    finally:
        writer.close()
        mirror.close()


def test_keeps_children_the_schema_does_not_name(zk: ZKHandler):
    """Lock contenders live under keys with no named children: the mirror must see them."""
    zk.client.ensure_path("/locks/primary_node/contender-1")
    mirror = TreeMirror(zk.client, ["/locks"])
    assert mirror.start(10)
    assert mirror.children("/locks/primary_node") == ["contender-1"]
    mirror.close()


def test_cached_view_reads_its_own_writes(zk: ZKHandler):
    cluster.initialize(zk)
    view = CachedView(zk, open_mirror(zk))
    for index in range(20):
        view.write({("domain.state", uuid_of(1)): f"s{index}"})
        assert view.read(("domain.state", uuid_of(1))) == f"s{index}"
    view.delete(("domain.state", uuid_of(1)))
    assert not view.exists(("domain.state", uuid_of(1)))


def test_follows_changes_after_a_dropped_connection_in_the_same_session(tmp_path):
    """Zookeeper restarts (the session survives it): kazoo dropped every watch with the
    connection, and the mirror must follow changes made after it reconnected."""
    script, port = str(REPO / "scripts" / "zookeeper"), free_port()
    subprocess.run([script, "start", str(tmp_path), str(port)], check=True, capture_output=True)
    hosts = f"127.0.0.1:{port}"
    zk = ZKHandler(hosts, connect_timeout=10, session_timeout=20, secret=ZK_SECRET).connect()
    try:
        cluster.initialize(zk)
        zk.write(vm_values(uuid_of(1), "one"))
        mirror = TreeMirror(zk.client, ["/domains"])
        assert mirror.start(10) and mirror.loaded
        session = zk.session_id
        subprocess.run([script, "stop", str(tmp_path)], check=True, capture_output=True)
        assert wait_until(lambda: not mirror.loaded, 10)
        subprocess.run([script, "start", str(tmp_path), str(port)], check=True, capture_output=True)
        assert wait_until(lambda: mirror.loaded, 20)
        assert zk.session_id == session  # the same session: no "lost" ever came
        writer = ZKHandler(hosts, connect_timeout=10, session_timeout=4, secret=ZK_SECRET).connect()
        writer.write({("domain.state", uuid_of(1)): "start"})
        writer.write(vm_values(uuid_of(2), "two"))
        writer.close()
        assert wait_until(lambda: mirror.get(f"/domains/{uuid_of(1)}/state") == b"start")
        assert wait_until(lambda: mirror.get(f"/domains/{uuid_of(2)}") == b"two")
        mirror.close()
    finally:
        zk.close()
        subprocess.run([script, "stop", str(tmp_path)], check=False, capture_output=True)


def test_wait_is_woken_by_changes_and_sync_catches_up_with_every_session(zk):
    """wait() evaluates its predicate on each change (no poll); sync() returns once the mirror
    shows every write committed before it was called, also one made by another session that
    this one has not heard of yet (as a test's write, then a request to the API)."""
    import threading

    from pvc.zk.handler import ZKHandler

    zk.write({"base.config.cluster_name": "one"})
    mirror = TreeMirror(zk.client, ["/config"])
    assert mirror.start(timeout=10)
    try:
        threading.Timer(0.2, lambda: zk.write({"base.config.cluster_name": "two"})).start()
        assert mirror.wait(lambda: mirror.get("/config/cluster_name") == b"two", timeout=5)
        assert not mirror.wait(lambda: mirror.get("/config/cluster_name") == b"x", timeout=0.2)
        other = ZKHandler(zk.hosts, secret=ZK_SECRET).connect()
        try:
            for round_ in range(300):
                other.write({"base.config.cluster_name": f"r{round_}"})
                assert mirror.sync()
                assert mirror.get("/config/cluster_name") == f"r{round_}".encode(), round_
        finally:
            other.close()
    finally:
        mirror.close()


def test_loads_a_tree_of_many_batches_and_follows_it_with_one_watch_per_root(zk: ZKHandler):
    """Thousands of nodes: the load spans many multiRead batches; changes deep in the tree
    are seen without a watch of their own (kazoo keeps none for them)."""
    cluster.initialize(zk)
    pending = []
    for index in range(400):
        txn = zk.client.transaction()
        for key, value in vm_values(uuid_of(index), f"vm{index}").items():  # parents first
            txn.create(resolve(key)[0], value.encode())
        pending.append(txn.commit_async())
    assert all(not isinstance(r, Exception) for p in pending for r in p.get())
    mirror = TreeMirror(zk.client, ["/domains", "/names"])
    assert mirror.start(30)
    try:
        assert len(mirror.children("/domains")) == 400
        assert all(mirror.get(f"/domains/{uuid_of(i)}/node") == b"node1" for i in range(400))
        assert mirror.get("/names/domains/vm399") == uuid_of(399).encode()
        assert zk.client._data_watchers == {} and zk.client._child_watchers == {}
        zk.write({("domain.state", uuid_of(123)): "start"})
        zk.delete(("domain", uuid_of(7)))
        assert mirror.sync()
        assert mirror.get(f"/domains/{uuid_of(123)}/state") == b"start"
        assert uuid_of(7) not in mirror.children("/domains")
        assert mirror.get(f"/domains/{uuid_of(7)}/state") is None
    finally:
        mirror.close()


def test_a_view_written_from_a_mirror_listener_does_not_wait_for_its_own_thread(zk: ZKHandler):
    """sync() cannot wait on kazoo's thread for that thread: the write returns at once."""
    cluster.initialize(zk)
    view = CachedView(zk, open_mirror(zk))
    took: list[float] = []

    def on_change(path: str, data: bytes | None) -> None:
        if path == "/config/cluster_name" and data == b"go":
            started = time.monotonic()
            view.write({"base.config.upstream_ip": "10.0.0.1"})
            took.append(time.monotonic() - started)

    view.mirror.listen(on_change)
    view.write({"base.config.cluster_name": "go"})
    assert wait_until(lambda: took)
    assert took[0] < SYNC_TIMEOUT / 2  # a sync waiting for its own thread takes all of it
    assert zk.read("base.config.upstream_ip") == "10.0.0.1"


def test_another_sessions_transaction_is_seen_whole(zk: ZKHandler):
    """A transaction of another session (a VM's key and the keys below it) is applied as one
    change: a reader that lists the VM, or a listener told of it, finds its state and node
    too (the mirror once showed the key first and the rest a read later)."""
    from pvc.zk.handler import ZKHandler

    mirror = TreeMirror(zk.client, ["/domains"])
    assert mirror.start(timeout=10)
    partial: list[str] = []
    done = threading.Event()

    def whole(uuid: str) -> bool:
        base = f"/domains/{uuid}"
        return all(mirror.get(path) is not None for path in (base, f"{base}/state", f"{base}/node"))

    def told(path: str, data: bytes | None) -> None:
        if data is not None and path.count("/") == 2 and not whole(path.rsplit("/", 1)[1]):
            partial.append(f"listener: {path}")

    def read() -> None:
        while not done.is_set():
            partial.extend(f"reader: {u}" for u in mirror.children("/domains") if not whole(u))

    mirror.listen(told)
    reader = threading.Thread(target=read)
    reader.start()
    other = ZKHandler(zk.hosts, secret=ZK_SECRET).connect()
    try:
        for index in range(300):
            other.write(vm_values(uuid_of(index), f"vm{index}"))
        assert mirror.sync()
        assert len(mirror.children("/domains")) == 300
    finally:
        done.set()
        reader.join()
        other.close()
        mirror.close()
    assert partial == []
