"""Where a verb sends a VM, and whether it got there: the one "VM has settled" rule.

The API's waits (pvc.ops.vm_state.wait_for) and the CLI's --wait both judge a VM's record
with `arrived` and `failed`. A VM has arrived when its state is one of the goal's AND its node
agrees: for start, its node reports it running; for any other state, its node does not. It
failed when it is in state fail, when a shutdown gave up (back in start with a reason), or
when it left the states the goal passes through.

Pure and import-light (the CLI imports it): records in, answers out.
"""

from dataclasses import dataclass
from typing import Any

# What a node reports (`observed` state) for a VM that is up on it.
RUNNING = ("running", "paused")


@dataclass(frozen=True)
class Goal:
    """Where a verb sends a VM: the states it ends in, those it may pass through on the way
    (None: any), and the goal in words ({node}: the VM's node)."""

    states: tuple[str, ...]
    on_the_way: tuple[str, ...] | None = None
    text: str = ""


MOVED = ("start", "stop", "disable")  # a move ends running on the new node, or still off
GOALS = {
    "start": Goal(("start",), ("restart", "migrate"), "start on {node}"),
    "restart": Goal(("start",), ("restart", "migrate"), "restart on {node}"),
    "shutdown": Goal(("stop", "disable"), ("shutdown",), "shut down"),
    "stop": Goal(("stop", "disable"), (), "stop"),
    "disable": Goal(("stop", "disable"), (), "stop"),
    "move": Goal(MOVED, ("migrate",), "move to {node}"),
    "migrate": Goal(MOVED, ("migrate",), "move to {node}"),
    "unmigrate": Goal(MOVED, ("migrate",), "move back to {node}"),
}


def runs_on_its_node(record: dict[str, Any]) -> bool:
    """The VM's node reports it up."""
    observed = record["observed"] or {}
    return observed.get("node") == record["node"] and observed.get("state") in RUNNING


def arrived(record: dict[str, Any], goal: Goal) -> bool:
    """In one of the goal's states, and its node agrees (runs it for start, else does not)."""
    if record["state"] not in goal.states:
        return False
    return runs_on_its_node(record) == (record["state"] == "start")


def failed(record: dict[str, Any], goal: Goal) -> bool:
    """It will not get there by itself: state fail, a shutdown that gave up (back in start
    with a reason), or a state off its way."""
    state = record["state"]
    if state in goal.states:
        return False
    if state == "fail" or (state == "start" and record["failed_reason"]):
        return True
    return goal.on_the_way is not None and state not in goal.on_the_way


def progress(record: dict[str, Any]) -> str:
    """Where a VM is now, in words: its state and what its node reports."""
    observed = record["observed"]
    if not observed:
        return f"state {record['state']}, no node reports it yet"
    return f"state {record['state']}, {observed.get('node')} reports it {observed.get('state')}"
