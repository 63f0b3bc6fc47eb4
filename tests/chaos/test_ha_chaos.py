"""HA chaos in `make test`: 50 rounds of random crashes, frozen daemons and network cuts of
random nodes (the primary too) on a real 3-node cluster with real libvirtds, simulated BMCs and
an independent observer of where VMs run. A failure prints its seed: `scripts/chaos-ha --seed S`
replays the same choices."""

import os
import random

import pytest

from tests.chaos import ha_chaos

pytestmark = pytest.mark.chaos

ROUNDS = 50


@pytest.mark.timeout(2400)  # 50 rounds of ~15 s, each bounded by the recovery wait
def test_no_vm_ever_runs_twice_and_every_vm_comes_back(tmp_path_factory):
    seed = int(os.environ.get("PVC_CHAOS_SEED", random.randrange(1 << 32)))
    workdir = tmp_path_factory.mktemp("hachaos")
    report = ha_chaos.run(workdir, ROUNDS, 3, 4, seed, "pvcj", "10.213.0")
    print("\n".join([f"seed {seed}", *report.lines()]))
    assert report.violations == [], f"seed {seed}"
    assert report.failures == [], f"seed {seed}"
    assert report.rounds == ROUNDS
    assert set(report.recovery) == set(ha_chaos.FAULTS)  # every kind of fault was tried
