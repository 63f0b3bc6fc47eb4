"""`pvc vm ... --wait`, the client-side wait, run as the built dist/pvc against a real API and
Zookeeper; no node daemon runs: a thread plays its part."""

# the fixtures imported from test_cli_vm (pvc and vm1) are the tests' parameters
# ruff: noqa: F811

import time

import pytest

from pvc.cli import client
from pvc.cli import vm as vm_cli
from pvc.cli.connections import Connection
from pvc.errors import PvcError, Unavailable
from tests.conftest import fails, ok
from tests.integration.test_api import call
from tests.integration.test_cli_vm import UUID1, observe, once_state, pvc, record, vm1  # noqa: F401 (fixtures)


def wait_line(result) -> tuple[str, float]:
    """The progress line of --wait, and the seconds it says."""
    line = ok(result).splitlines()[-1]
    head, _, took = line.rpartition(" done in ")
    assert took.endswith(" s")
    return head, float(took[:-2])


def test_start_wait_ends_when_the_node_reports_it_running(pvc, vm1, zk):
    daemon = once_state(zk, "start", lambda: observe(zk))
    head, took = wait_line(pvc("vm", "start", "vm1", "--wait"))
    daemon.join()
    assert head == "waiting for vm1 to start on node1..."
    assert 0.3 < took < 20


def test_stop_wait_ends_when_the_node_reports_it_off(pvc, vm1, zk):
    zk.write({("domain.state", UUID1): "start"})
    observe(zk)
    daemon = once_state(zk, "stop", lambda: observe(zk, "shutoff"))
    head, took = wait_line(pvc("vm", "stop", "vm1", "-w"))
    daemon.join()
    assert head == "waiting for vm1 to stop..." and 0.3 < took < 20


def test_migrate_wait_ends_when_it_runs_on_the_target(pvc, vm1, zk):
    zk.write({("domain.state", UUID1): "start"})
    observe(zk)

    def arrive():
        observe(zk, node="node2")
        zk.write({("domain.state", UUID1): "start"})

    daemon = once_state(zk, "migrate", arrive)
    head, took = wait_line(pvc("vm", "migrate", "vm1", "-w"))
    daemon.join()
    assert head == "waiting for vm1 to move to node2..." and 0.3 < took < 20


def test_moving_a_stopped_vm_waits_for_nothing(pvc, vm1):
    head, took = wait_line(pvc("vm", "move", "vm1", "node2", "-w"))
    assert head == "waiting for vm1 to move to node2..." and took < 5


@pytest.mark.parametrize(
    "verb, failure, message",
    [
        ("start", {"domain.state": "fail", "domain.failed_reason": "no such disk"},
         "pvc: vm1 did not start on node1: state fail (no such disk)"),
        ("shutdown", {"domain.state": "start", "domain.failed_reason": "the guest did not shut "
                      "down within 180 s; it still runs"},
         "pvc: vm1 did not shut down: state start (the guest did not shut down within 180 s; "
         "it still runs)"),
    ],
)  # fmt: skip
def test_wait_reports_a_failure(pvc, vm1, zk, verb, failure, message):
    if verb == "shutdown":
        zk.write({("domain.state", UUID1): "start"})
        observe(zk)
    values = {(key, UUID1): value for key, value in failure.items()}
    daemon = once_state(zk, verb, lambda: zk.write(values))
    result = pvc("vm", verb, "vm1", "--wait")
    daemon.join()
    assert fails(result) == message
    assert result.stdout.splitlines()[-1].startswith("waiting for vm1 to ")


def test_wait_times_out(api_server, pvc, vm1, zk, capsys):
    zk.write({("domain.state", UUID1): "start"})
    connection = Connection("test", "127.0.0.1", api_server.port, api_key=api_server.key)
    api = client.ApiClient(connection)
    deadline = time.monotonic() + 10
    while api.get(f"/vm/{UUID1}")["state"] != "start":  # the API's mirror follows the write
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    message = (
        r"vm1 is still on its way to start on node1 after 1 s \(now: state start, no node "
        r"reports it yet\); see 'pvc vm info vm1'"
    )
    with pytest.raises(PvcError, match=message):
        vm_cli.wait(api, UUID1, "start", timeout=1.0)
    assert time.monotonic() - started < 5
    assert capsys.readouterr().out == "waiting for vm1 to start on node1...\n"


def test_a_wait_that_runs_out_says_the_vm_is_still_on_its_way(pvc, vm1, zk, api_server):
    """CLI: exit 1 with one line saying where the VM is now; API: 202 with the record."""
    result = pvc("vm", "start", "vm1", "--wait", "--timeout", "1")
    assert fails(result) == (
        "pvc: vm1 is still on its way to start on node1 after 1 s (now: state start, no node "
        "reports it yet); see 'pvc vm info vm1'"
    )
    assert result.stdout.splitlines() == [
        "VM 'vm1' starting on node1", "waiting for vm1 to start on node1..."
    ]  # fmt: skip
    observe(zk, "shutoff")
    result = pvc("vm", "restart", UUID1, "-w", "--timeout", "0.5")
    assert fails(result) == (
        "pvc: vm1 is still on its way to restart on node1 after 0.5 s (now: state restart, "
        "node1 reports it shutoff); see 'pvc vm info vm1'"
    )
    zk.write({("domain.state", UUID1): "start"})
    params = {"state": "start", "wait": True, "timeout": 0.5}
    status, reply = call(api_server, "POST", f"/vm/{UUID1}/state", params)
    assert status == 202
    assert reply == record(pvc) | {
        "message": "VM 'vm1' is still on its way to start after 0.5 s (now: state start, node1 "
        "reports it shutoff)"
    }  # fmt: skip
    params = {"action": "migrate", "wait": True, "timeout": 0.5}
    status, reply = call(api_server, "POST", "/vm/vm1/node", params)
    assert status == 202 and (reply["state"], reply["node"]) == ("migrate", "node2")
    assert reply["message"] == (
        "VM 'vm1' is still on its way to move to node2 after 0.5 s (now: state migrate, node1 "
        "reports it shutoff)"
    )


def test_wait_rides_out_an_api_that_does_not_answer(monkeypatch, capsys):
    """The API moves with the primary role: a poll that gets no answer is tried again."""
    answers = [
        {"name": "vm1", "state": "start", "node": "node1", "observed": None},
        Unavailable("cannot reach the API"),
        {"name": "vm1", "state": "start", "node": "node1",
         "observed": {"node": "node1", "state": "running"}},
    ]  # fmt: skip

    class FakeApi:
        def get(self, path):
            assert path == "/vm/vm1"
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    monkeypatch.setattr(vm_cli, "POLL_INTERVAL", 0.01)
    vm_cli.wait(FakeApi(), "vm1", "start", timeout=5)
    assert answers == []
    assert capsys.readouterr().out.startswith("waiting for vm1 to start on node1... done in ")
