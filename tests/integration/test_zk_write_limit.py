"""pvc.zk.write_limit on a real Zookeeper: a write over limits.TRANSACTION_MAX is refused
before it is sent, with its size and the limit, and the session goes on as if nothing
happened (Zookeeper would have dropped its connection)."""

import pytest

from pvc import limits
from pvc.errors import TooLarge
from pvc.ops import cluster
from pvc.zk.locks import exclusive_lock

BIG = "x" * 1_200_000  # the 1.2 MB value that used to cost the session its connection


@pytest.fixture
def watched(zk):
    """An initialised cluster, and every session state change from now on."""
    cluster.initialize(zk)
    states: list[str] = []
    zk.add_listener(states.append)
    return zk, states


def still_connected(zk, session: int, states: list[str]) -> None:
    assert zk.connected and zk.session_id == session and zk.round_trip()
    assert states == []  # never suspended: the connection was never dropped


def test_a_value_over_the_limit_is_refused_and_the_session_stays(watched):
    zk, states = watched
    session = zk.session_id
    with pytest.raises(TooLarge) as refused:
        zk.write({("domain", "u1"): "vm1", ("domain.failed_reason", "u1"): BIG})
    message = str(refused.value)
    assert f"{limits.TRANSACTION_MAX:,} bytes" in message and "1,200," in message
    assert refused.value.http_status == 413
    still_connected(zk, session, states)
    assert not zk.exists(("domain", "u1"))  # nothing of the transaction was written
    zk.write({("domain", "u1"): "vm1"})  # and the session writes on
    assert zk.read(("domain", "u1")) == "vm1"


def test_a_transaction_of_many_small_values_is_measured_as_a_whole(watched):
    zk, states = watched
    session = zk.session_id
    chunk = "y" * 100_000
    values = {("domain.xml", f"u{index}"): chunk for index in range(10)}
    with pytest.raises(TooLarge):
        zk.write(values)
    still_connected(zk, session, states)
    assert zk.children("base.domains") == []
    zk.write(dict(list(values.items())[:8]))  # 800 KB and their paths: under the limit
    assert len(zk.children("base.domains")) == 8


def test_every_way_of_writing_is_guarded(watched):
    """Private keys, ephemeral claims and lock contenders go through the same door."""
    zk, states = watched
    session = zk.session_id
    with pytest.raises(TooLarge):
        zk.write_private(("private.ipmi", "node1"), {"password": BIG})
    with pytest.raises(TooLarge):
        zk.claim_ephemeral(("node.alive", "node1"), BIG)
    with pytest.raises(TooLarge):
        zk.client.set("/config", BIG.encode())
    still_connected(zk, session, states)
    with exclusive_lock(zk, "lock.primary_node", 5):
        assert zk.claim_ephemeral(("node.alive", "node1"), "small")
