"""Flush and ready as tasks, through real node daemons (libvirt test:///default each), a real
Zookeeper and the API the primary serves; `pvc node flush|ready --wait` and
`pvc cluster task` as the built dist/pvc. Also what becomes of a task whose runner dies."""

import json
import os
import re
import subprocess
import time
import uuid

import pytest

from pvc.ops import jobs, placement, vm, vm_state
from pvc.ops import node as node_ops
from tests.conftest import fails, free_port, ok
from tests.local_cluster import PVC_BIN, LocalCluster

POLICY = placement.Policy(selector="vms")
KEEP = 4  # ended tasks the primary keeps


def domain(name: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = LocalCluster(
        tmp_path_factory.mktemp("tasks"), 3, prefix="pvcq", subnet="10.218.0", zk_port=free_port()
    )
    # 20 missed keepalives before dead: a killed daemon restarted at once is back well before
    # (zipapp start and the old session's expiry take seconds on a loaded machine)
    local.settings = {"jobs": {"keep_finished": KEEP}, "timers": {"fence_intervals": 20}}
    local.up()
    local.start_all()
    yield local
    local.down()


@pytest.fixture(scope="module")
def zk(cluster):
    handler = cluster.running_observer()
    yield handler
    handler.close()


@pytest.fixture
def pvc(run_pvc, cluster, zk):
    """dist/pvc on the API of the cluster's primary (on the floating address)."""
    ok(run_pvc("connection", "add", "t", "-a", cluster.floating, "-p", "7370",
               "-k", cluster.api_key))  # fmt: skip

    def run(*args: str, **kwargs):
        return run_pvc("-c", "t", *args, **kwargs)

    until(lambda: run("node", "list").returncode == 0, 20)
    return run


def until(condition, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return found


def secondary(cluster, zk) -> str:
    """A node that is not primary (killing it moves no API)."""
    primary = zk.read("base.config.primary_node")
    return next(name for name in reversed(cluster.names) if name != primary)


def running_vms_on(zk, node: str, prefix: str, count: int) -> list[str]:
    names = [f"{prefix}{index}" for index in range(count)]
    for name in names:
        vm.define(zk, POLICY, domain(name), node=node)
        vm_state.start(zk, POLICY, name)
    for name in names:
        record = vm_state.wait_for(zk, name, ("start",), 20)
        assert record["observed"]["node"] == node, record
    return names


def task_of(zk, task: str) -> dict:
    return jobs.info(zk, task)


def ended(zk, task: str, timeout: float = 60) -> dict:
    return until(lambda: jobs.ended(zk.read(("job", task))) and task_of(zk, task), timeout)


def started(zk, task: str) -> dict:
    """The task once it runs and has reported its first step."""
    return until(lambda: (task_of(zk, task)["progress"]["current"] >= 1) and task_of(zk, task))


def test_flush_and_ready_are_tasks_with_progress(cluster, zk, pvc):
    node = secondary(cluster, zk)
    names = running_vms_on(zk, node, "fl", 3)
    out = ok(pvc("node", "flush", node, "--wait")).splitlines()
    task = out[0].rsplit("task ", 1)[1].rstrip(")")
    assert out[0].startswith(f"node '{node}' flushing")
    steps = out[1:-1]  # not a terminal: a plain line per step it saw (fast steps may pass
    # between two answers of the API)
    assert steps[-1] == "3/3 done (done)"
    step = re.compile(r"(\d)/3 fl(\d): moving away \(running\)|0/0 (queued|started) \(\w+\)")
    assert all(step.fullmatch(line) for line in steps[:-1]), steps
    assert out[-1].startswith("done in ")
    record = task_of(zk, task)
    assert (record["kind"], record["state"], record["runner"]) == ("flush", "done", node)
    assert record["progress"] == {"current": 3, "total": 3, "message": "done"}
    assert sorted(record["result"]["moved"]) == names
    assert record["started"] <= record["finished"] and record["claimed_by"] is None
    assert zk.read(("node.state.domain", node)) == "flushed"
    for name in names:
        moved = vm.info(zk, name)
        assert moved["node"] != node and moved["lastnode"] == node
    again = ok(pvc("node", "flush", node, "--wait")).strip()
    assert again == f"node '{node}' is already flushed"
    back = json.loads(ok(pvc("node", "ready", node, "--wait", "-f", "json")))  # one document
    assert (back["kind"], back["state"], sorted(back["result"]["returned"])) == (
        "unflush", "done", names
    )  # fmt: skip
    assert zk.read(("node.state.domain", node)) == "ready"
    for name in names:
        assert vm_state.wait_for(zk, name, ("start",), 20)["observed"]["node"] == node
    listed = json.loads(ok(pvc("cluster", "task", "list", "--kind", "flush", "-f", "json")))
    assert listed[0]["id"] == task


def test_cancel_and_a_new_request_stop_the_flush_in_progress(cluster, zk, pvc):
    node = secondary(cluster, zk)
    running_vms_on(zk, node, "cx", 14)  # enough that the second flush still runs when ready comes
    task = node_ops.set_domain_state(zk, node, "flush")["task"]
    started(zk, task)
    assert "stops it after its current step" in jobs.cancel(zk, task)["message"]
    record = ended(zk, task)
    progress = record["progress"]
    assert record["state"] == "cancelled" and progress["current"] < progress["total"]
    assert zk.read(("node.state.domain", node)) == "flush"  # stopped half way
    line = fails(pvc("cluster", "task", "cancel", task))
    assert line == f"pvc: task '{task}' is already cancelled; nothing to cancel"
    # a flush again, then ready while it runs: the flush is cancelled, the unflush follows it
    flush = node_ops.set_domain_state(zk, node, "flush")["task"]
    started(zk, flush)
    ready = node_ops.set_domain_state(zk, node, "ready")["task"]
    assert ended(zk, flush)["state"] == "cancelled"
    assert ended(zk, ready)["state"] == "done"
    assert zk.read(("node.state.domain", node)) == "ready"
    assert vm.list_vms(zk, node=node) and not [r for r in vm.list_vms(zk) if r["lastnode"]]


def test_a_task_whose_runner_died_resumes_when_its_daemon_returns(cluster, zk):
    node = secondary(cluster, zk)
    running_vms_on(zk, node, "rs", 6)
    task = node_ops.set_domain_state(zk, node, "flush")["task"]
    started(zk, task)
    cluster.kill(node)
    cluster.start(node)  # back before the fence monitor could declare it dead
    record = ended(zk, task, 90)
    assert (record["state"], record["attempts"]) == ("done", 2), record
    assert zk.read(("node.state.domain", node)) == "flushed"
    node_ops.set_domain_state(zk, node, "ready")
    until(lambda: zk.read(("node.state.domain", node)) == "ready", 60)


def restart(cluster, zk, node: str, **settings) -> None:
    """Restarts a node's daemon with more settings (none: as configured at first)."""
    cluster.node_settings[node] = settings
    cluster.write_config(node)
    cluster.stop(node, timeout=60)
    cluster.start(node)
    until(lambda: zk.read(("node.state.daemon", node)) == "run", 60)


def test_autoflush_on_stop_is_a_flush_task_the_daemon_waits_for(cluster, zk):
    node = secondary(cluster, zk)
    restart(cluster, zk, node, vm={"autoflush": True})
    names = running_vms_on(zk, node, "af", 3)
    assert cluster.stop(node, timeout=60) == 0
    flush = next(r for r in jobs.list_jobs(zk, kind="flush") if r["runner"] == node)
    assert flush["state"] == "done" and set(names) <= set(flush["result"]["moved"])
    assert zk.read(("node.state.domain", node)) == "flushed"
    assert zk.read(("node.state.daemon", node)) == "stop"
    assert vm.list_vms(zk, node=node) == []
    restart(cluster, zk, node)
    node_ops.set_domain_state(zk, node, "ready")
    until(lambda: zk.read(("node.state.domain", node)) == "ready", 60)


def test_wait_on_a_task_whose_runner_died_exits_1_with_the_reason(cluster, zk, pvc, run_pvc):
    node = secondary(cluster, zk)
    until(lambda: zk.read(("node.state.daemon", node)) == "run")
    running_vms_on(zk, node, "dd", 6)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVC_")}
    env["PVC_CLIENT_DIR"] = str(run_pvc.client_dir)
    with subprocess.Popen(
        [str(PVC_BIN), "-c", "t", "node", "flush", node, "--wait"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as follower:  # fmt: skip
        task = until(lambda: jobs.active(zk, ("flush",), node))[0]["id"]
        started(zk, task)
        cluster.kill(node)
        try:
            _, stderr = follower.communicate(timeout=120)
        finally:
            follower.kill()
    assert follower.returncode == 1 and "Traceback" not in stderr
    assert re.fullmatch(
        f"pvc: task {task} failed: its runner {node} died while it ran \\(its Zookeeper "
        f"session ended\\), and node {node} is (dead|fence-failed)",
        stderr.strip(),
    ), stderr
    cluster.start(node)
    until(lambda: zk.read(("node.state.daemon", node)) == "run", 60)


def test_the_primary_keeps_only_the_newest_ended_tasks(zk):
    newest = jobs.list_jobs(zk, state="done")[0]["id"]

    def kept() -> list[dict]:
        return [r for r in jobs.list_jobs(zk) if r["state"] in jobs.ENDED]

    until(lambda: len(kept()) == KEEP)
    assert newest in [r["id"] for r in kept()]
