"""VM state changes: start, restart, shutdown, stop, disable; and following a VM until it
got where a verb sent it.

Verbs return at once: the node daemon that owns the VM acts on what they write
(pvc.node.vms). Asking for a state the VM is already in (start of a running VM, stop or
shutdown of a stopped or disabled one, disable of a disabled one) is a no-op answer that says
so; a disabled VM stays disabled.
"""

import time
from typing import Any

from pvc.errors import ConcurrentChange, Conflict, InvalidInput, PvcError
from pvc.ops import allocation, vm_goals
from pvc.ops.placement import Policy
from pvc.ops.vm import answer, find, identify, read_record, require_not_provisioning
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
    require_not_provisioning(name, current)
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
    """Starts a VM on its node, if that node can take it (memory over-commit included, checked
    and written in one transaction guarded by the node's allocation version); a disabled VM
    only with `force`."""
    uuid = find(zk, vm)
    return allocation.retrying(lambda: _start(zk, policy, uuid, vm, force))


def _start(zk: ZKHandler, policy: Policy, uuid: str, vm: str, force: bool) -> dict[str, Any]:
    state, version = zk.read_versioned(("domain.state", uuid))
    record = read_record(zk, uuid, vm)
    name = record["name"]
    require_not_provisioning(name, state)
    if state == "disable" and not force:
        raise Conflict(f"VM '{name}' is disabled; use force to start it anyway")
    if state in ("start", "restart", "migrate"):
        return _already(uuid, name, state)
    if state not in ("stop", "fail", "disable"):
        raise Conflict(f"VM '{name}' is in state {state}; cannot start it now")

    def check(claim: allocation.Claim) -> None:
        _check_usable(claim, name)
        if read_record(zk, uuid, vm)["node"] != claim.node:
            raise ConcurrentChange(f"VM '{name}' moved to another node meanwhile")
        claim.check(policy, record["memory"])

    values = {("domain.state", uuid): "start", ("domain.failed_reason", uuid): ""}
    allocation.allocate(zk, record["node"], values, {("domain.state", uuid): version}, check)
    return answer(uuid, name, f"VM '{name}' starting on {record['node']}")


def _check_usable(claim: allocation.Claim, name: str) -> None:
    node = claim.loads.get(claim.node)
    if node is None or not node.usable:
        why = "does not exist" if node is None else f"is {node.daemon_state}/{node.domain_state}"
        raise InvalidInput(
            f"VM '{name}' belongs on node {claim.node}, which {why}; move it to another node"
        )


def restart(zk: ZKHandler, vm: str) -> dict[str, Any]:
    """Restarts a running VM."""
    uuid, name, already = _set_state(zk, vm, "restart", ("start",))
    if already:
        return _already(uuid, name, already)
    return answer(uuid, name, f"VM '{name}' restarting")


# How often a wait without a mirror reads the VM again, in seconds.
POLL_INTERVAL = 0.1
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
    """Waits until the VM is in one of `states` AND its node agrees (pvc.ops.vm_goals), or
    failed (state fail, or a shutdown that gave up); returns its record.

    A store backed by a mirror is waited on through the mirror (woken by every change);
    a plain ZKHandler is polled. Raises StillGoing, with the current record, if `timeout`
    seconds pass first; `goal` (by default the states) says in its message where the VM
    was going.
    """
    target = vm_goals.Goal(states)
    uuid = find(zk, vm)
    found: list[dict[str, Any]] = []

    def settled() -> bool:
        found[:] = [read_record(zk, uuid, vm)]
        return vm_goals.arrived(found[0], target) or vm_goals.failed(found[0], target)

    mirror = getattr(zk, "mirror", None)
    if mirror is not None:
        done = mirror.wait(settled, timeout)
    else:
        deadline = time.monotonic() + timeout
        while not (done := settled()) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
    record = found[0]
    if done:
        return record
    raise StillGoing(
        f"VM '{record['name']}' is still on its way to {goal or '/'.join(states)} after "
        f"{timeout:g} s (now: {vm_goals.progress(record)})",
        record,
    )
