"""VM state changes: start, restart, shutdown, stop, disable; and following a VM until it
got where a verb sent it.

Verbs return at once: the node daemon that owns the VM acts on what they write
(pvc.node.vms). Asking for a state the VM is already in (start of a running VM, stop or
shutdown of a stopped or disabled one, disable of a disabled one) is a no-op answer that says
so; a disabled VM stays disabled.
"""

import time
from typing import Any

from pvc.errors import Conflict, InvalidInput, PvcError
from pvc.ops import allocation
from pvc.ops.placement import Policy
from pvc.ops.vm import answer, identify, info
from pvc.zk.handler import ZKHandler

# How answers describe a VM that already is where a verb would take it.
ALREADY = {
    "start": "running",
    "restart": "restarting",
    "migrate": "migrating",
    "stop": "stopped",
    "disable": "disabled",
    "shutdown": "shutting down",
}


class StillGoing(PvcError):
    """A wait ended before the VM got there: the change was accepted and goes on.

    `record` is the VM as it is now; the API answers 202 Accepted with it.
    """

    http_status = 202

    def __init__(self, message: str, record: dict[str, Any]):
        super().__init__(message)
        self.record = record


# --- state changes ---------------------------------------------------------------------------


def _set_state(
    zk: ZKHandler,
    vm: str,
    state: str,
    allowed_from: tuple[str, ...] | None = None,
    noop_from: tuple[str, ...] | None = None,
    **extra: Any,
) -> tuple[str, str, str | None]:
    """Writes a new state (and extra keys), guarded by the state read and `allowed_from`.

    A VM in one of `noop_from` (default: `state` itself) is left alone. Returns (uuid, name,
    the state it was left in, or None when the new state was written).
    """
    uuid, name = identify(zk, vm)
    current, version = zk.read_versioned(("domain.state", uuid))
    if current in (noop_from or (state,)):
        return uuid, name, current
    if allowed_from is not None and current not in allowed_from:
        raise Conflict(f"VM '{name}' is in state {current}; cannot {state} it now")
    values = {("domain.state", uuid): state, **{(k, uuid): v for k, v in extra.items()}}
    zk.write(values, expect={("domain.state", uuid): version})
    return uuid, name, None


def _already(uuid: str, name: str, state: str, off: bool = False) -> dict[str, Any]:
    """The no-op answer for a VM already where a verb would take it (`off`: off was asked)."""
    note = " (and so off)" if off and state == "disable" else ""
    return answer(uuid, name, f"VM '{name}' is already {ALREADY[state]}{note}; nothing changed")


def start(zk: ZKHandler, policy: Policy, vm: str, force: bool = False) -> dict[str, Any]:
    """Starts a VM on its node, if that node can take it (memory over-commit included); a
    disabled VM only with `force`."""
    record = info(zk, vm)
    uuid, name = record["uuid"], record["name"]
    if record["state"] == "disable" and not force:
        raise Conflict(f"VM '{name}' is disabled; use force to start it anyway")
    if record["state"] in ("start", "restart", "migrate"):
        return _already(uuid, name, record["state"])
    node = allocation.node_loads(zk).get(record["node"])
    if node is None or not node.usable:
        why = "does not exist" if node is None else f"is {node.daemon_state}/{node.domain_state}"
        raise InvalidInput(
            f"VM '{name}' belongs on node {record['node']}, which {why}; move it to another node"
        )
    allocation.check_memory(zk, policy, record["node"], record["memory"])
    allowed = ("stop", "fail", "disable") if force else ("stop", "fail")
    noop = ("start", "restart", "migrate")
    _, _, already = _set_state(zk, uuid, "start", allowed, noop, **{"domain.failed_reason": ""})
    if already:  # started meanwhile
        return _already(uuid, name, already)
    return answer(uuid, name, f"VM '{name}' starting on {record['node']}")


def restart(zk: ZKHandler, vm: str) -> dict[str, Any]:
    """Restarts a running VM."""
    uuid, name, already = _set_state(zk, vm, "restart", ("start",))
    if already:
        return _already(uuid, name, already)
    return answer(uuid, name, f"VM '{name}' restarting")


# A VM off (stopped, or disabled: it stays disabled) needs no stop or shutdown.
OFF = ("stop", "disable")


def shutdown(zk: ZKHandler, vm: str, force: bool = False) -> dict[str, Any]:
    """Shuts a running VM down gracefully (`force`: then off if it does not stop in time)."""
    extra = {"domain.shutdown_force": force}
    noop = (*OFF, "shutdown")
    uuid, name, already = _set_state(zk, vm, "shutdown", ("start", "restart"), noop, **extra)
    if already:
        return _already(uuid, name, already, off=True)
    return answer(uuid, name, f"VM '{name}' shutting down")


def stop(zk: ZKHandler, vm: str) -> dict[str, Any]:
    """Turns a VM off at once."""
    uuid, name, already = _set_state(zk, vm, "stop", None, OFF)
    if already:
        return _already(uuid, name, already, off=True)
    return answer(uuid, name, f"VM '{name}' stopping (forced off)")


def disable(zk: ZKHandler, vm: str) -> dict[str, Any]:
    """Turns a VM off and keeps it off (autostart and recovery leave it alone)."""
    uuid, name, already = _set_state(zk, vm, "disable")
    if already:
        return _already(uuid, name, already)
    return answer(uuid, name, f"VM '{name}' disabled (stopped and kept off)")


def wait_for(
    zk: ZKHandler, vm: str, states: tuple[str, ...], timeout: float, goal: str | None = None
) -> dict[str, Any]:
    """Polls until the VM is in one of `states` AND its node reports it so (running where it
    should run for start; not running for stop/disable); returns the record. Also returns
    when it failed: state fail, or back to start with a reason (a shutdown that timed out).

    Raises StillGoing, with the current record, if `timeout` seconds pass first; `goal` (by
    default the states) says in its message where the VM was going.
    """
    deadline = time.monotonic() + timeout
    while True:
        record = info(zk, vm)
        observed = record["observed"] or {}
        running = observed.get("state") in ("running", "paused")
        if record["state"] == "start":
            settled = running and observed.get("node") == record["node"]
        else:
            settled = not running or observed.get("node") != record["node"]
        if record["state"] in states and settled:
            return record
        gave_up = record["state"] == "start" and "start" not in states and record["failed_reason"]
        if record["state"] == "fail" or gave_up:
            return record
        if time.monotonic() > deadline:
            raise StillGoing(
                f"VM '{record['name']}' is still on its way to {goal or '/'.join(states)} after "
                f"{timeout:g} s (now: {progress(record)})",
                record,
            )
        time.sleep(0.1)


def progress(record: dict[str, Any]) -> str:
    """Where a VM is now, in words: its state and what its node reports."""
    observed = record["observed"]
    if not observed:
        return f"state {record['state']}, no node reports it yet"
    return f"state {record['state']}, {observed.get('node')} reports it {observed.get('state')}"
