"""The one "VM has settled" rule (pvc.ops.vm_goals), on plain records."""

import pytest

from pvc.ops.vm_goals import GOALS, Goal, arrived, failed, progress


def record(state, node="node1", observed=None, reason=""):
    return {"state": state, "node": node, "observed": observed, "failed_reason": reason}


UP = {"node": "node1", "state": "running"}
UP_ELSEWHERE = {"node": "node2", "state": "running"}
OFF = {"node": "node1", "state": "shutoff"}


@pytest.mark.parametrize(
    "verb, vm, done",
    [
        ("start", record("start", observed=UP), True),
        ("start", record("start", observed={"node": "node1", "state": "paused"}), True),
        ("start", record("start"), False),  # no report yet
        ("start", record("start", observed=UP_ELSEWHERE), False),  # still on the old node
        ("stop", record("stop", observed=OFF), True),
        ("stop", record("stop"), True),
        ("stop", record("stop", observed=UP), False),  # its node still runs it
        ("disable", record("disable", observed=UP_ELSEWHERE), True),
        ("migrate", record("start", observed=UP), True),
        ("migrate", record("migrate", observed=UP_ELSEWHERE), False),
        ("move", record("stop", node="node2"), True),  # a stopped VM only changes node
    ],
)
def test_arrived(verb, vm, done):
    assert arrived(vm, GOALS[verb]) is done


@pytest.mark.parametrize(
    "verb, vm, gave_up",
    [
        ("start", record("fail", reason="no disk"), True),
        ("start", record("restart"), False),  # on its way
        ("start", record("stop"), True),  # stopped meanwhile: it will not start by itself
        ("shutdown", record("shutdown", observed=UP), False),
        ("shutdown", record("start", observed=UP, reason="timed out"), True),
        ("stop", record("shutdown"), True),
        ("move", record("migrate"), False),
    ],
)
def test_failed(verb, vm, gave_up):
    assert failed(vm, GOALS[verb]) is gave_up


def test_a_goal_without_a_way_fails_only_on_fail_or_a_shutdown_given_up():
    goal = Goal(("stop", "disable"))  # what the API's waits build from their states
    assert not failed(record("shutdown"), goal) and not failed(record("restart"), goal)
    assert failed(record("fail"), goal)
    assert failed(record("start", reason="the guest did not shut down in time"), goal)


def test_progress_says_what_the_node_reports():
    assert progress(record("start")) == "state start, no node reports it yet"
    assert progress(record("stop", observed=UP)) == "state stop, node1 reports it running"
