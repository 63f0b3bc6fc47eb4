"""Primary chaos: hundreds of random handovers, kills, freezes, restarts and racing commands
against real coordinator daemons on a real Zookeeper, checked by an independent observer
(tests/chaos/observer.py). A failure prints its seed: `scripts/chaos-primary --seed S` replays
the same events."""

import os
import random
import subprocess
import time

import pytest

from tests.chaos.observer import Observer, RouterHistory
from tests.chaos.primary_chaos import ChaosRunner, running_cluster

pytestmark = pytest.mark.chaos

ROUNDS = 300
BUDGET = 480.0  # seconds; fewer than ROUNDS rounds in this time is a failure


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("chaos"), 3, "pvcc", "10.202.0", 2.0) as local:
        yield local


def test_router_history_reports_only_instants_where_two_were_busy():
    history = RouterHistory()
    history.confirm({"node1": (4, 10, "primary"), "node2": (2, 9, "secondary")}, 0)
    # A watch shows node2 in takeover before node1's relinquish (written earlier) is seen:
    # read at different moments, they look like two at once, but they never were.
    history.record("node2", 3, 30, "takeover", 1)
    assert history.overlaps() == []  # nothing past the horizon is judged
    history.confirm({"node1": (5, 20, "secondary"), "node2": (3, 30, "takeover")}, 2)
    assert history.overlaps() == []
    # node1 takes over while node2 is still in takeover: reported at that exact zxid.
    history.record("node1", 6, 40, "takeover", 3)
    history.confirm({"node1": (7, 50, "secondary"), "node2": (4, 45, "primary")}, 4)
    overlaps = history.overlaps()
    assert [(overlap.zxid, overlap.states, overlap.continued) for overlap in overlaps] == [
        (40, {"node1": "takeover", "node2": "takeover"}, False),
        (45, {"node1": "takeover", "node2": "primary"}, True),
    ]
    # A version never seen leaves its span undetermined instead of guessed.
    history.record("node1", 9, 70, "secondary", 5)
    history.confirm({"node1": (9, 70, "secondary"), "node2": (5, 60, "secondary")}, 6)
    assert history.overlaps() == []
    assert history.missing_versions() == 1
    assert history.undetermined == 1  # node2's change at zxid 60, inside node1's gap


@pytest.mark.timeout(900)  # BUDGET, the cluster's start and the checks after it
def test_at_most_one_primary_and_a_primary_again_within_the_bound(cluster, capsys):
    seed = int(os.environ.get("PVC_CHAOS_SEED") or random.randrange(1 << 32))
    runner = ChaosRunner(cluster, seed, log=print)
    try:
        tally = runner.run(ROUNDS, budget=BUDGET)
    finally:
        runner.close()
    with capsys.disabled():
        print(f"\n{tally.report()}\nreplay: scripts/chaos-primary --rounds {ROUNDS} --seed {seed}")
    assert tally.violations == []
    assert tally.anomalies == []
    assert tally.rounds >= ROUNDS, f"only {tally.rounds} rounds within {BUDGET:g} s"


def test_observer_reports_what_it_is_there_to_catch(cluster):
    """A second node put in takeover, then the floating address added to a second namespace,
    each until the observer reports it (or 3 s): it must report both."""
    observer = Observer(cluster).start()
    try:
        primary = cluster.wait_for_primary(observer.zk, 20)
        other = next(name for name in cluster.names if name != primary)
        observer.zk.write({("node.state.router", other): "takeover"})
        try:
            wait_for_violation(observer, "router")
        finally:
            observer.zk.write({("node.state.router", other): "secondary"})
        address = ["dev", "eth0", f"{cluster.floating}/24"]
        namespace = ["ip", "-n", cluster.namespace(other), "addr"]
        subprocess.run([*namespace, "add", *address], check=True)
        try:
            wait_for_violation(observer, "floating")
        finally:
            subprocess.run([*namespace, "del", *address], check=True)
        found = [(violation.kind, set(violation.culprits)) for violation in observer.violations()]
    finally:
        observer.close()
    assert found == [("router", {primary, other}), ("floating", {primary, other})]


def wait_for_violation(observer: Observer, kind: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(violation.kind == kind for violation in observer.violations()):
            return
        time.sleep(0.02)
