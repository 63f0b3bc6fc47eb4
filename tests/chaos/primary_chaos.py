"""Randomized events against the primary coordinator role, and the rounds that check each one.

A round picks an event (weighted, from a seeded generator: the seed replays a run), does it,
and waits for a primary serving again: router state primary, named in primary_node, the only
holder of the floating address, and the API answering GET / on it. That must come within the
event's bound, counted from the moment of the disruption: GRACEFUL_BOUND for handovers, the
session timeout + CRASH_MARGIN for kill -9 and SIGSTOP; when every daemon was (re)started, from
the moment they all run again (their start-up time is not failover; SETTLE_TIMEOUT bounds it).
Then the round waits until every daemon is back in daemon state `run`, so the next one starts
on a whole cluster. The observer (tests.chaos.observer) checks "at most one" all along.

Used by tests/chaos/test_primary_chaos.py, scripts/chaos-primary and scripts/bench/failover.
"""

import json
import math
import random
import signal
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pvc.zk.handler import ZKHandler
from tests.chaos.observer import Observer, Snapshot
from tests.conftest import free_port
from tests.local_cluster import LocalCluster
from tests.processes import COMMAND_TIMEOUT

GRACEFUL_BOUND = 5.0
CRASH_MARGIN = 3.0
LATE_LIMIT = 10.0  # how long past its bound a round still waits for a primary, to measure it
SETTLE_TIMEOUT = 20.0  # for every daemon to be running again after an event
API_TIMEOUT = 0.5

# kind -> weight. The cheap handovers dominate, so that hundreds of rounds fit in minutes.
EVENTS = {
    "secondary": 43,  # `node secondary` of the primary, through the API
    "race-primary": 38,  # two or three `node primary` at once, for different nodes
    "stop-primary": 4,  # SIGTERM of the primary daemon, started again once replaced
    "kill-primary": 6,  # kill -9 of the primary daemon, started again at once
    "freeze-primary": 5,  # SIGSTOP of the primary past the session timeout, then SIGCONT
    "start-all": 1,  # every daemon stopped, then all started at the same moment
    "restart-all": 3,  # every daemon restarted (stop, start) at random moments within 1 s
}


@contextmanager
def running_cluster(
    workdir: Path, nodes: int, prefix: str, subnet: str, session_timeout: float, **timers: float
) -> Iterator[LocalCluster]:
    """A LocalCluster on a free Zookeeper port with every daemon started; torn down after."""
    cluster = LocalCluster(
        workdir,
        nodes,
        prefix=prefix,
        subnet=subnet,
        session_timeout=session_timeout,
        zk_port=free_port(),
        **timers,
    )
    try:
        cluster.up()
        cluster.start_all()
        yield cluster
    finally:
        cluster.down()


def api_request(cluster: LocalCluster, method: str, path: str, **params: str) -> int:
    """The HTTP status of one API request on the floating address (0: no answer)."""
    body = json.dumps(params).encode() if params else None
    request = urllib.request.Request(cluster.api_url + path, data=body, method=method)
    request.add_header("X-Api-Key", cluster.api_key)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=API_TIMEOUT) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def serving(cluster: LocalCluster, snapshot: Snapshot, exclude: str | None = None) -> str | None:
    """The primary of the snapshot if it is whole and its API answers now."""
    named = snapshot.primary_node
    if named in (None, "none", exclude) or snapshot.router.get(named) != "primary":
        return None
    if snapshot.holders != (named,):
        return None
    return named if api_request(cluster, "GET", "/") == 200 else None


def wait_for_serving(
    cluster: LocalCluster, observer: Observer, since: float, timeout: float, exclude: str | None
) -> tuple[str, float] | None:
    """(primary, time.monotonic() when it answered) for the first serving primary seen in a
    snapshot taken after `since`, or None after `timeout`."""
    deadline = since + timeout
    moment = since
    while (left := deadline - time.monotonic()) > 0:
        snapshot = observer.snapshot_after(moment, left)
        if snapshot is None:
            return None
        moment = snapshot.taken
        primary = serving(cluster, snapshot, exclude)
        if primary is not None:
            return primary, time.monotonic()
    return None


def all_running(zk: ZKHandler, names: list[str]) -> bool:
    """Whether every node's daemon is registered (alive) and in daemon state run."""
    states = zk.read_many([("node.state.daemon", name) for name in names])
    return all(state == "run" for state in states) and all(
        zk.exists(("node.alive", name)) for name in names
    )


def summary(values: list[float]) -> tuple[float, float, float]:
    """(median, p95, max); p95 by nearest rank."""
    ordered = sorted(values)
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]
    return statistics.median(ordered), p95, ordered[-1]


class Wedged(Exception):
    """The cluster has no primary even after a reset: the run cannot go on."""


@dataclass
class Disruption:
    """What an event did: when its bound starts and how long it is, a node that may not count
    as the next primary (it is frozen or stopping), what to do once a primary serves, and
    whether it restarted the primary's daemon (then even the same node is a new primary).
    `done` is when the action was over: only snapshots taken later can show its effect."""

    started: float
    bound: float
    detail: str
    exclude: str | None = None
    afterwards: Callable[[], None] = lambda: None
    restarted: bool = False
    done: float = field(default_factory=time.monotonic)


@dataclass
class Tally:
    seed: int
    nodes: int
    rounds: int = 0
    elapsed: float = 0.0
    events: Counter = field(default_factory=Counter)
    recoveries: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    durations: Counter = field(default_factory=Counter)  # seconds spent per kind, in all
    outcomes: Counter = field(default_factory=Counter)  # API answers to the commands
    violations: list[str] = field(default_factory=list)  # in full: round, event, timeline
    anomalies: list[str] = field(default_factory=list)  # not invariants, but wrong
    coverage: str = ""

    def report(self) -> str:
        lines = [
            f"primary chaos: {self.rounds} rounds in {self.elapsed:.0f} s, {self.nodes} nodes, "
            f"seed {self.seed}; median, p95, max: seconds from the event to a new primary serving",
            f"{'event':<16}{'count':>6}{'spent':>8}{'median':>9}{'p95':>9}{'max':>9}",
        ]
        for kind in EVENTS:
            times = self.recoveries.get(kind)
            figures = "".join(f"{value:9.2f}" for value in summary(times)) if times else ""
            spent = f"{self.durations[kind]:7.0f}s"
            lines.append(f"{kind:<16}{self.events[kind]:>6}{spent}{figures}")
        answers = ", ".join(f"{key}: {count}" for key, count in sorted(self.outcomes.items()))
        lines.append(f"command answers: {answers or 'none'}")
        lines.append(f"observer: {self.coverage}")
        lines.append(f"violations: {len(self.violations)}, anomalies: {len(self.anomalies)}")
        return "\n".join(lines + self.violations + self.anomalies)


class ChaosRunner:
    """Runs rounds against a started LocalCluster, watched by its own Observer."""

    def __init__(
        self, cluster: LocalCluster, seed: int, log: Callable[[str], None] = lambda _: None
    ):
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.log = log
        self.tally = Tally(seed, len(cluster.names))
        self.crash_bound = cluster.session_timeout + CRASH_MARGIN
        self.observer = Observer(cluster).start()
        self.zk = cluster.observer()  # for the runner's own reads and repairs
        self._seen_violations = 0

    def close(self) -> None:
        self.tally.coverage = self.observer.coverage()
        self.observer.close()
        self.zk.close()

    def run(self, rounds: int, budget: float | None = None) -> Tally:
        """Up to `rounds` rounds, stopping early once `budget` seconds have passed."""
        started = time.monotonic()
        try:
            primary = self._settle(started)
            while self.tally.rounds < rounds:
                if budget is not None and time.monotonic() - started > budget:
                    self.log(f"time budget of {budget:g} s used up")
                    break
                primary = self.run_round(self.tally.rounds + 1, primary)
        except Wedged as wedged:
            self._anomaly(f"run ended: {wedged}", "")
        self.tally.elapsed = time.monotonic() - started
        return self.tally

    def run_round(self, number: int, primary: str) -> str:
        """One event and its checks; returns the primary serving at the end."""
        kind = self.rng.choices(list(EVENTS), weights=list(EVENTS.values()))[0]
        round_started = time.monotonic()
        self.observer.note(f"round {number}: {kind} (primary {primary})")
        disruption = getattr(self, "_" + kind.replace("-", "_"))(primary)
        self.observer.note(f"round {number}: {disruption.detail}")
        context = f"seed {self.tally.seed}, round {number}, {kind}: {disruption.detail}"
        limit = disruption.bound + LATE_LIMIT
        found = wait_for_serving(
            self.cluster,
            self.observer,
            disruption.done,
            disruption.started + limit - disruption.done,
            disruption.exclude,
        )
        disruption.afterwards()
        self.tally.rounds += 1
        self.tally.events[kind] += 1
        if found is None:
            self._violation(f"no primary within {limit:g} s", context, disruption.started)
            self._reset()
            successor, took = "none", "-"
        else:
            successor, answered = found
            elapsed = answered - disruption.started
            if successor != primary or disruption.restarted:
                self.tally.recoveries[kind].append(elapsed)
            if elapsed > disruption.bound:
                self._violation(
                    f"primary {successor} only after {elapsed:.2f} s (bound "
                    f"{disruption.bound:g} s)",
                    context,
                    disruption.started,
                )
            took = f"{elapsed:.2f} s"
        self.log(f"round {number:4d} {kind:<15} {disruption.detail} -> {successor} in {took}")
        primary = self._settle(disruption.started, context)
        self._collect_observer_violations(context, disruption.started)
        self.tally.durations[kind] += time.monotonic() - round_started
        return primary

    # --- events -------------------------------------------------------------------------------

    def _secondary(self, primary: str) -> Disruption:
        started = time.monotonic()
        status = self._command(primary, "secondary")
        return Disruption(started, GRACEFUL_BOUND, f"node secondary {primary}: {status}")

    def _race_primary(self, primary: str) -> Disruption:
        count = self.rng.choice([2, 3])
        targets = self.rng.sample(self.cluster.names, count)
        barrier = threading.Barrier(count)

        def command(target: str) -> int:
            barrier.wait()
            return self._command(target, "primary")

        started = time.monotonic()
        with ThreadPoolExecutor(count) as pool:
            statuses = list(pool.map(command, targets))
        answers = ", ".join(f"{t}: {s}" for t, s in zip(targets, statuses, strict=True))
        return Disruption(started, GRACEFUL_BOUND, f"node primary from {primary}, {answers}")

    def _stop_primary(self, primary: str) -> Disruption:
        started = time.monotonic()
        self.cluster.signal(primary, signal.SIGTERM)

        def restart() -> None:
            self.cluster.stop(primary)
            self.cluster.start(primary)

        return Disruption(started, GRACEFUL_BOUND, f"SIGTERM {primary}", primary, restart)

    def _kill_primary(self, primary: str) -> Disruption:
        started = time.monotonic()
        self.cluster.kill(primary)
        self.cluster.start(primary)
        detail = f"kill -9 {primary}, started again"
        return Disruption(started, self.crash_bound, detail, restarted=True)

    def _freeze_primary(self, primary: str) -> Disruption:
        hold = self.cluster.session_timeout + self.rng.uniform(0.5, 1.5)
        started = time.monotonic()
        self.cluster.signal(primary, signal.SIGSTOP)
        thaw = threading.Timer(hold, self.cluster.signal, (primary, signal.SIGCONT))
        thaw.start()
        detail = f"SIGSTOP {primary} for {hold:.2f} s"
        return Disruption(started, self.crash_bound, detail, primary, thaw.join)

    def _start_all(self, _primary: str) -> Disruption:
        with ThreadPoolExecutor(len(self.cluster.names)) as pool:
            list(pool.map(self.cluster.stop, self.cluster.names))
        self.cluster.start_all()
        self._wait_until_running("start-all")
        detail = "all stopped, then started together"
        return Disruption(time.monotonic(), GRACEFUL_BOUND, detail, restarted=True)

    def _restart_all(self, _primary: str) -> Disruption:
        delays = {name: self.rng.uniform(0, 1) for name in self.cluster.names}

        def restart(name: str) -> None:
            time.sleep(delays[name])
            self.cluster.stop(name)
            self.cluster.start(name)

        with ThreadPoolExecutor(len(self.cluster.names)) as pool:
            list(pool.map(restart, self.cluster.names))
        self._wait_until_running("restart-all")
        order = " ".join(sorted(delays, key=delays.get))
        detail = f"all restarted, in the order {order}"
        return Disruption(time.monotonic(), GRACEFUL_BOUND, detail, restarted=True)

    def _command(self, node: str, state: str) -> int:
        status = api_request(self.cluster, "POST", f"/node/{node}/coordinator-state", state=state)
        self.tally.outcomes[f"{state} {status}"] += 1
        return status

    # --- checks and repairs -------------------------------------------------------------------

    def _settle(self, since: float, context: str = "start", may_reset: bool = True) -> str:
        """Waits until every daemon runs and a primary serves; returns that primary."""
        for name in self.cluster.names:
            if not self.cluster.alive(name):
                self._anomaly(f"daemon {name} exited by itself; started again", context)
                self.cluster.stop(name)
                self.cluster.start(name)
        self._wait_until_running(context)
        found = wait_for_serving(
            self.cluster, self.observer, time.monotonic(), GRACEFUL_BOUND, None
        )
        if found is not None:
            return found[0]
        if not may_reset:
            raise Wedged(f"no primary even after a reset of the cluster ({context})")
        self._violation("no primary serving once the daemons settled", context, since)
        self._reset()
        return self._settle(time.monotonic(), context, may_reset=False)

    def _wait_until_running(self, context: str) -> None:
        """Waits until every daemon is registered and in daemon state run: an anomaly if that
        takes more than SETTLE_TIMEOUT."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not all_running(self.zk, self.cluster.names):
            if time.monotonic() > deadline:
                self._anomaly(f"not every daemon running after {SETTLE_TIMEOUT:g} s", context)
                return
            time.sleep(0.05)
        self.observer.note("every daemon running")

    def _reset(self) -> None:
        """Brings a wedged cluster back after a recorded failure: every daemon killed and its
        session left to expire, the floating address removed, the role vacated and router
        states cleared, all started again."""
        self.observer.note("RESET: killing every daemon")
        for name in list(self.cluster.processes):
            self.cluster.kill(name)
        for name in self.cluster.names:
            address = [f"{self.cluster.floating}/24", "dev", "eth0"]
            subprocess.run(
                ["ip", "-n", self.cluster.namespace(name), "addr", "del", *address],
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
            )
        deadline = time.monotonic() + self.cluster.session_timeout + 5
        while any(self.zk.exists(("node.alive", name)) for name in self.cluster.names):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        values = {("node.state.router", name): "secondary" for name in self.cluster.names}
        self.zk.write({**values, "base.config.primary_node": "none"})
        self.cluster.start_all()

    def _collect_observer_violations(self, context: str, since: float) -> None:
        """The observer's new violations; _settle just used a snapshot taken after the round, so
        the observer's checks have covered the whole round."""
        found = self.observer.violations()
        for violation in found[self._seen_violations :]:
            self._violation(violation.describe(self.observer.origin), context, since)
        self._seen_violations = len(found)

    def _violation(self, what: str, context: str, since: float | None = None) -> None:
        self.tally.violations.append(self._describe("VIOLATION", what, context, since))
        self.log(self.tally.violations[-1])

    def _anomaly(self, what: str, context: str) -> None:
        self.tally.anomalies.append(self._describe("ANOMALY", what, context, None))
        self.log(self.tally.anomalies[-1])

    def _describe(self, label: str, what: str, context: str, since: float | None) -> str:
        start = (since if since is not None else time.monotonic()) - 2
        timeline = self.observer.timeline(start, time.monotonic())
        return "\n".join(
            [f"{label}: {what}", f"  {context} (logs in {self.cluster.workdir})"]
            + [f"    {line}" for line in timeline]
        )
