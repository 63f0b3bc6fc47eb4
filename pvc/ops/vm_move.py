"""VM moves: migrate (for a while: `lastnode` remembers where it came from), move (for
good) and unmigrate (back to `lastnode`). A running VM moves live unless its migration method
says otherwise; a stopped one only changes its assignment.
"""

from typing import Any

from pvc.errors import Conflict, InvalidInput
from pvc.ops import allocation, user_input
from pvc.ops.placement import Policy
from pvc.ops.vm import answer, find, info, read_record, require_not_provisioning
from pvc.zk.handler import ZKHandler


def migrate(
    zk: ZKHandler, policy: Policy, vm: str, node: str | None, force: bool = False
) -> dict[str, Any]:
    """Temporary move: records `lastnode` so unmigrate brings it home."""
    return _relocate(zk, policy, vm, node, permanent=False, force=force)


def move(zk: ZKHandler, policy: Policy, vm: str, node: str | None) -> dict[str, Any]:
    """Permanent move: clears `lastnode`."""
    return _relocate(zk, policy, vm, node, permanent=True)


def unmigrate(zk: ZKHandler, policy: Policy, vm: str) -> dict[str, Any]:
    """Moves a migrated VM back to its `lastnode`."""
    record = info(zk, vm)
    if not record["lastnode"]:
        raise InvalidInput(f"VM '{record['name']}' is not migrated (no lastnode)")
    return _relocate(zk, policy, vm, record["lastnode"], permanent=True, home=True)


def _relocate(
    zk: ZKHandler,
    policy: Policy,
    vm: str,
    node: str | None,
    *,
    permanent: bool,
    force: bool = False,
    home: bool = False,
) -> dict[str, Any]:
    if node is not None:
        user_input.require_name(node, "node name")
    uuid = find(zk, vm)
    return allocation.retrying(
        lambda: _relocate_once(zk, policy, uuid, vm, node, permanent, force, home)
    )


def _relocate_once(
    zk: ZKHandler,
    policy: Policy,
    uuid: str,
    vm: str,
    node: str | None,
    permanent: bool,
    force: bool,
    home: bool,
) -> dict[str, Any]:
    """One try: checks against what it read, and writes the VM's new node (and state; a
    running VM's target gets its allocation guard) in one transaction."""
    current, node_version = zk.read_versioned(("domain.node", uuid))
    state, version = zk.read_versioned(("domain.state", uuid))
    record = read_record(zk, uuid, vm)
    name = record["name"]
    require_not_provisioning(name, state)
    if state == "shutdown":
        raise Conflict(f"VM '{name}' is shutting down; move it once it is stopped")
    if record["lastnode"] and not permanent and not force:
        raise Conflict(
            f"VM '{name}' is already migrated (from {record['lastnode']}); "
            "use force to migrate it again, or unmigrate"
        )
    target = allocation.target(zk, policy, record, node, exclude=(current,))
    running = state in ("start", "restart", "migrate")
    if running and record["migration_method"] == "none":
        raise InvalidInput(f"VM '{name}' has migration method none: shut it down to move it")
    values: dict[Any, Any] = {("domain.node", uuid): target}
    lastnode = "" if home or permanent else record["lastnode"] or current
    values[("domain.lastnode", uuid)] = "" if lastnode == target else lastnode  # back home
    # The state is written even when it stays: a verb guarded by the state's version (a
    # start claiming the VM's node) then sees the move.
    values[("domain.state", uuid)] = "migrate" if running else state
    expect = {("domain.state", uuid): version, ("domain.node", uuid): node_version}
    if running:
        memory = record["memory"]
        allocation.allocate(zk, target, values, expect, lambda claim: claim.check(policy, memory))
    else:
        zk.write(values, expect=expect)
    verb = "returning" if home else ("moving" if permanent else "migrating")
    how = "" if running else " (it is not running: only its assignment changes)"
    return answer(uuid, name, f"VM '{name}' {verb} from {current} to {target}{how}", node=target)
