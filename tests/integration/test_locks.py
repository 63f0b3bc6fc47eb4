"""Lock recipes against a real Zookeeper: contention, timeouts, release on session loss."""

import contextlib
import threading
import time

import pytest
from kazoo.client import KazooClient

from pvc.errors import LockTimeout
from pvc.zk.handler import ZKHandler
from pvc.zk.locks import exclusive_lock, read_lock, write_lock
from tests.conftest import ZK_SECRET

KEY = "lock.primary_node"


@pytest.fixture
def sessions(zk_hosts):
    handlers = [
        ZKHandler(zk_hosts, session_timeout=2, secret=ZK_SECRET).connect() for _ in range(2)
    ]
    yield handlers
    for handler in handlers:
        with contextlib.suppress(Exception):  # some tests close a session themselves
            handler.close()


def contend(handler, timeout, hold, results, barrier):
    barrier.wait()
    started = time.monotonic()
    try:
        with exclusive_lock(handler, KEY, timeout):
            results.append(("won", time.monotonic() - started))
            time.sleep(hold)
    except LockTimeout:
        results.append(("timeout", time.monotonic() - started))


def test_exactly_one_of_two_contenders_wins(sessions):
    results = []
    barrier = threading.Barrier(2)
    threads = [
        threading.Thread(target=contend, args=(h, 0.4, 1.0, results, barrier)) for h in sessions
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = sorted(outcome for outcome, _ in results)
    assert outcomes == ["timeout", "won"]
    waited = next(elapsed for outcome, elapsed in results if outcome == "timeout")
    assert 0.35 <= waited < 0.9  # it gave up near its 0.4 s timeout


def test_timed_out_waiter_leaves_no_contender_node(sessions, zk):
    holder, waiter = sessions
    with exclusive_lock(holder, KEY, 1):
        with pytest.raises(LockTimeout, match="held elsewhere"), exclusive_lock(waiter, KEY, 0.2):
            pass
        assert len(zk.children(KEY)) == 1
    assert zk.children(KEY) == []


def test_lock_of_a_closed_session_passes_to_the_waiter(sessions):
    holder, waiter = sessions
    lock = exclusive_lock(holder, KEY, 1).__enter__()
    assert lock.held
    got = []
    thread = threading.Thread(target=lambda: got.append(_take(waiter, 5)))
    thread.start()
    time.sleep(0.3)
    assert got == []
    holder.close()  # a crashed holder: its session ends, its ephemeral node goes
    thread.join()
    assert got and got[0] < 5
    assert not lock.held


def _take(handler, timeout):
    started = time.monotonic()
    with exclusive_lock(handler, KEY, timeout):
        return time.monotonic() - started


def test_lock_of_an_expired_session_passes_to_the_waiter(sessions, zk_hosts):
    holder, waiter = sessions
    lock = exclusive_lock(holder, KEY, 1).__enter__()
    # Expire the holder's session from the server side: a second client that joins the same
    # session and closes it ends it, exactly as a timeout on the server would.
    session_id, password = holder.client.client_id
    intruder = KazooClient(hosts=zk_hosts, client_id=(session_id, password))
    intruder.start(timeout=5)
    intruder.stop()
    intruder.close()
    assert _take(waiter, 5) < 5
    deadline = time.monotonic() + 5
    while lock.held and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lock.held  # the holder learnt it lost the lock


def test_readers_share_writers_exclude(sessions):
    first, second = sessions
    with read_lock(first, "lock.primary_sync", 1), read_lock(second, "lock.primary_sync", 1):
        pass  # two readers at once
    with read_lock(first, "lock.primary_sync", 1), pytest.raises(LockTimeout):  # noqa: SIM117
        with write_lock(second, "lock.primary_sync", 0.3):
            pass
    with write_lock(first, "lock.primary_sync", 1), pytest.raises(LockTimeout):  # noqa: SIM117
        with read_lock(second, "lock.primary_sync", 0.3):
            pass
