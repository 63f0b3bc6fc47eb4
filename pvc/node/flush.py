"""Node flush and unflush, run by the node's own daemon when its domain state asks for it.

flush: each active VM assigned here moves, one at a time (so the free-memory figures stay
true), to the node its selector picks, remembering this node as `lastnode` (an existing
lastnode is kept); a VM with no possible target is shut down and marked to start when this
node is ready again. Ends in `flushed`.
unflush: every VM whose lastnode is this node comes back, one at a time; stopped VMs assigned
here with `node_autostart` start. Ends in `ready`.
A new request (the domain state changing again) cancels the one in progress.
"""

import logging
import threading
import time

from pvc.errors import PvcError
from pvc.ops import placement, vm_move, vm_state
from pvc.ops import vm as vm_ops
from pvc.zk.handler import ZKHandler

log = logging.getLogger("pvc.node.flush")
PER_VM_TIMEOUT = 300.0


class Flusher:
    def __init__(self, zk: ZKHandler, name: str, policy: placement.Policy):
        self.zk = zk
        self.name = name
        self.policy = policy
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.zk.watch_data(("node.state.domain", self.name), lambda state, _: self._on(state))

    def _on(self, state: str | None) -> None:
        if state not in ("flush", "unflush"):
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._cancel.set()
                self._thread.join()
            self._cancel = threading.Event()
            work = self.flush if state == "flush" else self.unflush
            self._thread = threading.Thread(target=work, args=(self._cancel,), daemon=True)
            self._thread.start()

    def flush(self, cancel: threading.Event) -> None:
        log.info("flushing: moving VMs away")
        for record in self._vms(lambda r: r["node"] == self.name):
            if cancel.is_set():
                return
            if record["state"] not in placement.ACTIVE_STATES:
                continue
            try:
                vm_move.migrate(self.zk, self.policy, record["uuid"], None, force=True)
            except PvcError as exc:
                log.warning("VM %s cannot move (%s); shutting it down", record["name"], exc.message)
                self._shut_down_for_later(record)
            self._wait(record["uuid"], cancel)
        self._finish(cancel, "flush", "flushed")

    def unflush(self, cancel: threading.Event) -> None:
        log.info("unflushing: taking VMs back")
        for record in self._vms(lambda r: r["lastnode"] == self.name):
            if cancel.is_set():
                return
            try:
                vm_move.unmigrate(self.zk, self.policy, record["uuid"])
            except PvcError as exc:
                log.warning("VM %s cannot come back: %s", record["name"], exc.message)
                continue
            self._wait(record["uuid"], cancel)
        for record in self._vms(lambda r: r["node"] == self.name and r["node_autostart"]):
            if record["state"] in ("stop", "shutdown") and not cancel.is_set():
                try:
                    vm_state.start(self.zk, self.policy, record["uuid"])
                    vm_ops.set_meta(self.zk, record["uuid"], autostart=False)
                except PvcError as exc:
                    log.warning("VM %s did not autostart: %s", record["name"], exc.message)
        self._finish(cancel, "unflush", "ready")

    def _vms(self, keep) -> list[dict]:
        return [record for record in vm_ops.list_vms(self.zk) if keep(record)]

    def _shut_down_for_later(self, record: dict) -> None:
        try:
            vm_ops.set_meta(self.zk, record["uuid"], autostart=True)
            vm_state.shutdown(self.zk, record["uuid"], force=True)
        except PvcError as exc:
            log.error("VM %s: %s", record["name"], exc.message)

    def _wait(self, uuid: str, cancel: threading.Event) -> None:
        """Until the VM leaves migrate/shutdown (serial moves keep placement figures true)."""
        deadline = time.monotonic() + PER_VM_TIMEOUT
        while time.monotonic() < deadline and not cancel.wait(0.2):
            try:
                if vm_ops.info(self.zk, uuid)["state"] not in ("migrate", "shutdown"):
                    return
            except PvcError:
                return

    def _finish(self, cancel: threading.Event, doing: str, done: str) -> None:
        if cancel.is_set():
            return
        current, version = self.zk.read_versioned(("node.state.domain", self.name))
        if current == doing:
            self.zk.write(
                {("node.state.domain", self.name): done},
                expect={("node.state.domain", self.name): version},
            )
            log.info("node %s", done)
