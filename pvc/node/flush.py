"""Node flush and unflush: the job kinds `flush` and `unflush`, run by the node's own daemon
(pvc.node.jobs) for the jobs `pvc node flush|ready` create (pvc.ops.node.set_domain_state).

flush: each active VM assigned here moves, one at a time (so the free-memory figures stay
true), to the node its selector picks, remembering this node as `lastnode` (an existing
lastnode is kept), and the job waits until it has settled; a VM with no possible target is
shut down and marked to start when this node is ready again. Ends the domain state `flushed`,
in the transaction that ends the job. unflush: every VM whose lastnode is this node comes
back, one at a time; then stopped VMs assigned here with `node_autostart` start. Ends `ready`.

Both are idempotent (a job resumed after its runner died starts over and skips what is done).
Progress is i/N with the VM's name; a cancel (a new flush or ready request cancels the job in
progress) is honoured between VMs. Waits for a VM go through the mirror (vm_state.wait_for on
the daemon's view).
"""

import logging
from typing import Any

from pvc.errors import ConcurrentChange, PvcError
from pvc.limits import one_line
from pvc.node.jobs import Job
from pvc.ops import placement, vm_move, vm_state
from pvc.ops import vm as vm_ops

log = logging.getLogger("pvc.node.flush")
PER_VM_TIMEOUT = 300.0
# Where a flushed or returning VM has settled: anything but on its way or shutting down.
SETTLED = tuple(state for state in vm_ops.STATES if state not in ("migrate", "shutdown"))
FINISH_ATTEMPTS = 3


class NodeFlush:
    """The `flush` and `unflush` kinds for this node."""

    def __init__(self, view: Any, name: str, policy: placement.Policy, kind: str):
        self.view = view
        self.node = name
        self.policy = policy
        self.name = kind

    def run(self, job: Job) -> None:
        if self.name == "flush":
            self._flush(job)
        else:
            self._unflush(job)

    def _flush(self, job: Job) -> None:
        records = [
            r
            for r in vm_ops.list_vms(self.view, node=self.node)
            if r["state"] in placement.ACTIVE_STATES
        ]
        result: dict[str, Any] = {"moved": {}, "shut_down": [], "unsettled": []}
        for index, record in enumerate(records, start=1):
            name = record["name"]
            job.step(index, len(records), f"{name}: moving away")
            try:
                answer = vm_move.migrate(self.view, self.policy, record["uuid"], None, force=True)
                result["moved"][name] = answer["node"]
            except PvcError as exc:
                log.warning("VM %s cannot move (%s); shutting it down", name, exc.message)
                self._shut_down_for_later(record)
                result["shut_down"].append(name)
            self._settle(record, result)
        self._finish(job, result, "flush", "flushed")

    def _unflush(self, job: Job) -> None:
        back = [r for r in vm_ops.list_vms(self.view) if r["lastnode"] == self.node]
        autostart = [
            r
            for r in vm_ops.list_vms(self.view, node=self.node)
            if r["node_autostart"] and r["state"] in ("stop", "shutdown")
        ]
        total = len(back) + len(autostart)
        result: dict[str, Any] = {"returned": [], "started": [], "unsettled": [], "failed": {}}
        for index, record in enumerate(back, start=1):
            name = record["name"]
            job.step(index, total, f"{name}: coming back")
            try:
                vm_move.unmigrate(self.view, self.policy, record["uuid"])
                result["returned"].append(name)
            except PvcError as exc:
                log.warning("VM %s cannot come back: %s", name, exc.message)
                result["failed"][name] = one_line(exc.message)
                continue
            self._settle(record, result)
        for index, record in enumerate(autostart, start=len(back) + 1):
            name = record["name"]
            job.step(index, total, f"{name}: starting (autostart)")
            try:
                vm_state.start(self.view, self.policy, record["uuid"])
                vm_ops.set_meta(self.view, record["uuid"], autostart=False)
                result["started"].append(name)
            except PvcError as exc:
                log.warning("VM %s did not autostart: %s", name, exc.message)
                result["failed"][name] = one_line(exc.message)
        self._finish(job, result, "unflush", "ready")

    def _shut_down_for_later(self, record: dict[str, Any]) -> None:
        try:
            vm_ops.set_meta(self.view, record["uuid"], autostart=True)
            vm_state.shutdown(self.view, record["uuid"], force=True)
        except PvcError as exc:
            log.error("VM %s: %s", record["name"], exc.message)

    def _settle(self, record: dict[str, Any], result: dict[str, Any]) -> None:
        """Waits until the VM has settled (serial moves keep the placement figures true)."""
        try:
            vm_state.wait_for(self.view, record["uuid"], SETTLED, PER_VM_TIMEOUT, "settle")
        except vm_state.StillGoing as exc:
            log.warning("%s; going on with the next VM", exc.message)
            result["unsettled"].append(record["name"])
        except PvcError:
            pass  # removed meanwhile: nothing to wait for

    def _finish(self, job: Job, result: dict[str, Any], doing: str, done: str) -> None:
        """Ends the job and moves the domain state from `doing` to `done` in one transaction
        (unless a new request changed the domain state: that request cancelled this job)."""
        key = ("node.state.domain", self.node)
        for _ in range(FINISH_ATTEMPTS):
            job.check()
            current, version = self.view.read_versioned(key)
            also = {key: done} if current == doing else {}
            try:
                job.done(result, also, {key: version})
                log.info("node %s", done if also else f"{doing} done ({current} now)")
                return
            except ConcurrentChange:
                continue
        raise ConcurrentChange(f"the domain state of {self.node} kept changing; try again")


def kinds(view: Any, name: str, policy: placement.Policy) -> dict[str, NodeFlush]:
    """The flush and unflush kinds of this node's job runner."""
    return {kind: NodeFlush(view, name, policy, kind) for kind in ("flush", "unflush")}
