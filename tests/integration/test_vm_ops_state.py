"""pvc.ops.vm_state on a real Zookeeper: start, stop and the other state changes, and waiting
for a node to report a VM there.

No daemon acts on the VMs: a state written by a verb stays as written (tests play the daemon
where they need one).
"""

# the fixtures imported from test_vm_ops (nodes) are the tests' parameters
# ruff: noqa: F811

import threading
import time

import pytest

from pvc.errors import Conflict, PvcError
from pvc.ops import placement, vm, vm_state
from tests.integration.test_vm_ops import POLICY, add_hypervisor, define, nodes, set_state, snapshot  # noqa: F401

# --- start, stop and friends -----------------------------------------------------------------


def test_start_and_the_other_state_changes(nodes):
    uuid = define(nodes, "vm1")
    vm1 = {"name": "vm1", "uuid": uuid}
    assert vm_state.start(nodes, POLICY, "vm1") == vm1 | {"message": "VM 'vm1' starting on node1"}
    assert vm.info(nodes, "vm1")["state"] == "start"
    assert vm_state.restart(nodes, "vm1") == vm1 | {"message": "VM 'vm1' restarting"}
    set_state(nodes, "vm1", "start")
    assert vm_state.shutdown(nodes, "vm1", force=True) == vm1 | {
        "message": "VM 'vm1' shutting down"
    }
    assert nodes.read(("domain.shutdown_force", uuid)) is True
    assert vm_state.stop(nodes, "vm1")["message"] == "VM 'vm1' stopping (forced off)"
    assert vm_state.disable(nodes, "vm1")["message"].startswith("VM 'vm1' disabled")
    assert vm.info(nodes, "vm1")["state"] == "disable"


@pytest.mark.parametrize(
    "state, verb, message",
    [
        ("start", "start", "VM 'vm1' is already running; nothing changed"),
        ("restart", "start", "VM 'vm1' is already restarting; nothing changed"),
        ("migrate", "start", "VM 'vm1' is already migrating; nothing changed"),
        ("stop", "stop", "VM 'vm1' is already stopped; nothing changed"),
        ("stop", "shutdown", "VM 'vm1' is already stopped; nothing changed"),
        ("disable", "stop", "VM 'vm1' is already disabled (and so off); nothing changed"),
        ("disable", "shutdown", "VM 'vm1' is already disabled (and so off); nothing changed"),
        ("disable", "disable", "VM 'vm1' is already disabled; nothing changed"),
        ("shutdown", "shutdown", "VM 'vm1' is already shutting down; nothing changed"),
        ("restart", "restart", "VM 'vm1' is already restarting; nothing changed"),
    ],
)
def test_a_vm_already_there_is_left_alone(nodes, state, verb, message):
    """Asking for what already holds is a no-op answer (200), the same for every verb; a
    disabled VM stays disabled (stop and shutdown do not turn it into a merely stopped one)."""
    uuid = define(nodes, "vm1")
    set_state(nodes, "vm1", state)
    before = snapshot(nodes)
    verbs = {"start": lambda: vm_state.start(nodes, POLICY, uuid),
             "stop": lambda: vm_state.stop(nodes, uuid),
             "shutdown": lambda: vm_state.shutdown(nodes, uuid, force=True),
             "restart": lambda: vm_state.restart(nodes, uuid),
             "disable": lambda: vm_state.disable(nodes, uuid)}  # fmt: skip
    assert verbs[verb]() == {"name": "vm1", "uuid": uuid, "message": message}
    assert snapshot(nodes) == before


def test_stop_and_disable_from_the_other_states(nodes):
    define(nodes, "vm1")
    for state in ("start", "restart", "shutdown", "migrate", "fail"):
        set_state(nodes, "vm1", state)
        assert vm_state.stop(nodes, "vm1")["message"] == "VM 'vm1' stopping (forced off)"
        assert vm.info(nodes, "vm1")["state"] == "stop"
    vm_state.disable(nodes, "vm1")  # a stopped VM becomes disabled: kept off on purpose
    assert vm.info(nodes, "vm1")["state"] == "disable"


@pytest.mark.parametrize(
    "verb, state",
    [
        (vm_state.restart, "stop"),
        (vm_state.restart, "fail"),
        (vm_state.restart, "disable"),
        (vm_state.shutdown, "fail"),
    ],
)
def test_restart_and_shutdown_need_a_running_vm(nodes, verb, state):
    uuid = define(nodes, "vm1")
    set_state(nodes, "vm1", state)
    with pytest.raises(Conflict, match=f"VM 'vm1' is in state {state}; cannot"):
        verb(nodes, uuid)  # the message names the VM, not the UUID it was given
    assert vm.info(nodes, "vm1")["state"] == state


def test_a_disabled_vm_starts_only_with_force(nodes):
    define(nodes, "vm1")
    vm_state.disable(nodes, "vm1")
    with pytest.raises(Conflict, match="VM 'vm1' is disabled; use force"):
        vm_state.start(nodes, POLICY, vm.find(nodes, "vm1"))
    assert vm.info(nodes, "vm1")["state"] == "disable"
    vm_state.start(nodes, POLICY, "vm1", force=True)
    assert vm.info(nodes, "vm1")["state"] == "start"


def test_start_clears_the_failed_reason(nodes):
    uuid = define(nodes, "vm1")
    nodes.write({("domain.state", uuid): "fail", ("domain.failed_reason", uuid): "no disk"})
    vm_state.start(nodes, POLICY, "vm1")
    assert vm.info(nodes, "vm1")["failed_reason"] is None


def test_start_refuses_to_over_commit_memory(nodes):
    add_hypervisor(nodes, "node1", mem_total=1024)
    define(nodes, "vm1", memory=768, node="node1")
    define(nodes, "vm2", memory=512, node="node1")
    vm_state.start(nodes, POLICY, "vm1")
    message = (
        r"refused: node node1 would have 1280 MiB allocated to VMs, more than its "
        r"1024 MiB x 1 = 1024 MiB"
    )
    with pytest.raises(Conflict, match=message):
        vm_state.start(nodes, POLICY, "vm2")
    assert vm.info(nodes, "vm2")["state"] == "stop"
    vm_state.start(nodes, placement.Policy("mem", 1.5), "vm2")
    assert vm.info(nodes, "vm2")["state"] == "start"


# --- waiting ---------------------------------------------------------------------------------


def later(seconds: float, action) -> threading.Thread:
    """Runs `action()` after `seconds` on a thread (a node daemon's part)."""

    def run():
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_for_a_start_needs_the_node_to_report_it(nodes):
    uuid = define(nodes, "vm1", node="node2")
    vm_state.start(nodes, POLICY, "vm1")
    report = {("domain.observed", uuid): {"node": "node2", "state": "running"}}
    daemon = later(0.3, lambda: nodes.write(report))
    record = vm_state.wait_for(nodes, "vm1", ("start",), timeout=10)
    daemon.join()
    assert record["observed"] == {"node": "node2", "state": "running"}


def test_wait_for_returns_a_failure(nodes):
    uuid = define(nodes, "vm1")
    vm_state.start(nodes, POLICY, "vm1")
    failure = {("domain.state", uuid): "fail", ("domain.failed_reason", uuid): "no such disk"}
    later(0.2, lambda: nodes.write(failure))
    record = vm_state.wait_for(nodes, "vm1", ("start",), timeout=10)
    assert (record["state"], record["failed_reason"]) == ("fail", "no such disk")


def test_wait_for_times_out_with_the_record(nodes):
    """A wait that ends before the VM got there is not a conflict: the verb was accepted and
    the VM is still on its way (the API answers 202 with the record)."""
    uuid = define(nodes, "vm1")
    vm_state.start(nodes, POLICY, "vm1")
    started = time.monotonic()
    with pytest.raises(vm_state.StillGoing) as raised:
        vm_state.wait_for(nodes, uuid, ("start",), timeout=0.3)
    assert time.monotonic() - started < 2
    assert raised.value.http_status == 202 and raised.value.exit_code == 1
    assert raised.value.message == (
        "VM 'vm1' is still on its way to start after 0.3 s (now: state start, no node "
        "reports it yet)"
    )
    assert raised.value.record == vm.info(nodes, "vm1")


def test_wait_for_a_stop_needs_the_node_to_report_it_off(nodes):
    uuid = define(nodes, "vm1")
    vm_state.start(nodes, POLICY, "vm1")
    nodes.write({("domain.observed", uuid): {"node": "node1", "state": "running"}})
    vm_state.stop(nodes, "vm1")
    message = r"to stop after 0.3 s \(now: state stop, node1 reports it running\)"
    with pytest.raises(vm_state.StillGoing, match=message):
        vm_state.wait_for(nodes, "vm1", ("stop", "disable"), timeout=0.3, goal="stop")


def test_starting_a_vm_whose_node_is_gone_says_so(nodes):
    define(nodes, "vm1", node="node3")
    nodes.delete(("node", "node3"))
    with pytest.raises(PvcError, match="node3"):
        vm_state.start(nodes, POLICY, "vm1")
