"""API waits (`wait=true`) over real HTTP: a wait ends when the mirror shows the VM got there,
and waits are capped (pvc.api.waits), so clients waiting on VMs that never get there leave
the API answering everyone else."""

import threading
import time

import pytest

from pvc.api.server import THREADS
from pvc.api.waits import FREE_THREADS, MAX_WAITS
from pvc.ops import cluster, placement, vm
from tests.integration.test_api import call
from tests.integration.test_vm_ops import add_hypervisor, domain_xml


@pytest.fixture
def vm1(api_server, zk):
    """A stopped VM on node1; no daemon runs, so a start never gets reported."""
    cluster.initialize(zk)
    add_hypervisor(zk, "node1")
    uuid = vm.define(zk, placement.Policy(), domain_xml("vm1"), node="node1")["uuid"]
    deadline = time.monotonic() + 10
    while call(api_server, "GET", "/vm/vm1")[0] != 200:  # until the API's mirror shows it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return uuid


def test_waits_leave_threads_free():
    assert THREADS - MAX_WAITS >= FREE_THREADS > 0


def test_a_wait_ends_when_the_node_reports_the_vm(api_server, zk, vm1):
    report = {("domain.observed", vm1): {"node": "node1", "state": "running"}}
    threading.Timer(0.5, lambda: zk.write(report)).start()
    status, body = call(api_server, "POST", "/vm/vm1/state", {"state": "start", "wait": True})
    assert status == 200 and body["observed"] == {"node": "node1", "state": "running"}
    assert body["message"] == "VM 'vm1' starting on node1"


def test_a_wait_beyond_the_cap_answers_at_once_and_the_api_answers_the_rest(api_server, vm1):
    answers: list[tuple[int, dict]] = []
    params = {"state": "start", "wait": True, "timeout": 8}

    def wait():  # turned away while a probe below holds a slot: asks again
        while True:
            answer = call(api_server, "POST", "/vm/vm1/state", params)
            if "not waiting" not in answer[1]["message"]:
                answers.append(answer)
                return
            time.sleep(0.05)

    waiters = [threading.Thread(target=wait) for _ in range(MAX_WAITS)]
    for waiter in waiters:
        waiter.start()
    deadline = time.monotonic() + 20
    while True:  # until every waiter holds its slot: one more is turned away
        status, body = call(api_server, "POST", "/vm/vm1/state", params | {"timeout": 0.1})
        if "not waiting" in body["message"]:
            break
        assert time.monotonic() < deadline, "the waiters never filled the slots"
    assert status == 202 and body["state"] == "start" and body["name"] == "vm1"
    assert f"not waiting: {MAX_WAITS} requests are waiting already" in body["message"]
    assert call(api_server, "GET", "/")[0] == 200
    assert call(api_server, "GET", "/vm/vm1")[1]["state"] == "start"
    assert not answers  # all still waiting
    for waiter in waiters:
        waiter.join(15)
    assert len(answers) == MAX_WAITS
    assert {status for status, _ in answers} == {202}
    assert all("still on its way to start after 8 s" in body["message"] for _, body in answers)
