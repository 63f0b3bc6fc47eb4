"""Chaos for high availability: random node faults on a real cluster (tests.chaos.ha_cluster),
with an independent observer asserting that no VM ever runs on two nodes and that every VM runs
again within a bound after each fault.

One round: pick a node (the primary too) and a fault: power off (a crash: daemon, libvirtd and
VMs gone), freeze (the daemon stops; libvirtd and the VMs go on: only fencing stops them) or cut
(the node's network drops everything; it goes on running its VMs). Then wait until every VM runs
on exactly one node that is not the victim, and for the fence to complete; then heal, thaw and
power on the node, make it ready (its VMs come home), and wait until every VM runs again.
Used by tests/chaos/test_ha_chaos.py (make test) and scripts/chaos-ha (long runs).
"""

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from pvc.node.fencing import SAVING_THROWS
from tests.chaos.ha_cluster import HaCluster, Timers, ha_cluster, wait_fence_event
from tests.chaos.primary_chaos import summary

FAULTS = ("power_off", "freeze", "cut")
# The chaos profile: dead after 2 s, then 1.5 s of saving throws.
TIMERS = Timers(keepalive_interval=0.5, fence_intervals=4, suicide_intervals=6)


def recovery_bound(timers: Timers) -> float:
    """Fault -> every VM running elsewhere, at most: a primary's successor takes over after the
    session timeout, its monitor waits the whole dead time and the saving throws, then the
    fence and the starts; with room for a loaded machine."""
    dead = timers.keepalive_interval * (timers.fence_intervals + SAVING_THROWS)
    return timers.session_timeout + 1 + dead + 15


@dataclass
class Report:
    rounds: int = 0
    recovery: dict[str, list[float]] = field(default_factory=dict)  # fault -> seconds
    violations: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{self.rounds} rounds, {len(self.violations)} VMs seen on two nodes"]
        for fault, times in sorted(self.recovery.items()):
            median, p95, worst = summary(times)
            out.append(
                f"  {fault:<10} fault -> all VMs running elsewhere: p50 {median:.2f} s, "
                f"p95 {p95:.2f} s, max {worst:.2f} s (n={len(times)})"
            )
        return out + self.violations + self.failures


def one_round(ha: HaCluster, zk, rng: random.Random, report: Report, bound: float) -> None:
    victim = rng.choice(ha.cluster.names)
    fault = rng.choice(FAULTS)
    was_primary = zk.read("base.config.primary_node") == victim
    since = time.time()
    ha.observer.note(f"round {report.rounds + 1}: {fault} {victim}{' (primary)' * was_primary}")
    struck = time.monotonic()
    getattr(ha.faults, fault)(victim)
    ha.observer.wait_running(ha.vms.values(), bound, avoid=[victim])
    report.recovery.setdefault(fault, []).append(time.monotonic() - struck)
    wait_fence_event(zk, victim, "fence-complete", since)
    ha.bring_back(zk, victim)
    ha.observer.wait_running(ha.vms.values(), 60)
    report.rounds += 1


def run(workdir: Path, rounds: int, nodes: int, vms: int, seed: int, prefix: str, subnet: str,
        progress: bool = False) -> Report:  # fmt: skip
    """Runs `rounds` rounds on a new cluster; the report (failures stop the run)."""
    rng = random.Random(seed)
    report = Report()
    bound = recovery_bound(TIMERS)
    with ha_cluster(workdir, nodes, prefix, subnet, TIMERS) as ha:
        ha.define_vms(vms)
        zk = ha.zk()
        try:
            for _ in range(rounds):
                started = time.monotonic()
                try:
                    one_round(ha, zk, rng, report, bound)
                except TimeoutError as error:
                    report.failures.append(f"round {report.rounds + 1}: {error}")
                    report.failures += ha.observer.timeline(started - 1)
                    break
                if progress:
                    print(f"round {report.rounds} done", flush=True)
        finally:
            zk.close()
            report.violations = [v.describe(ha.observer.origin) for v in ha.observer.violations()]
    return report
