"""The node daemon's shutdown, bounded in time even while Zookeeper is unreachable.

Why it was not: kazoo queues a request made while it reconnects and waits for the reconnection
without a time limit. With Zookeeper down, every shutdown step that writes (the daemon state,
jobs handed back, the primary role handed over) waited forever, and the main thread with them.

The rule: a session that has been without its server for the session timeout is over (the
server has expired it, or will at its first word), so nothing this daemon could still write in
it would count. Once the daemon stops, the ZookeeperCutoff watches for that and then ends the
session on this side (ZKHandler.abandon): every request waiting for a reconnection fails at
once with Unavailable, as does every later one, and each step gives up and the next runs.

Safety holds without Zookeeper: a primary cut off from it has lost its lease long before
(pvc.node.lease: the lease ends at 0.6 x the session timeout, and the watchdog drops the
floating address then), so its services were stopped or are stopped without asking anyone; a
node whose `shutdown` state could not be written keeps its self-fence deadline in the
watchdog (pvc.node.watchdog_process), since the cluster may fence it.

Backstops: a deadline over the whole shutdown (from the configuration's timers), after which
the process exits; and a second SIGTERM or SIGINT, which exits at once. Exiting ends nothing
the cluster relies on: the watchdog drops the address when the daemon's pipe closes and keeps
its self-fence deadline, and the API child dies with the daemon (pvc.node.api_process).
"""

import logging
import os
import threading
import time

from pvc.config import Config
from pvc.zk.handler import ZKHandler

log = logging.getLogger("pvc.node")

POLL = 0.1
STEPS_MARGIN = 30.0  # seconds for the steps bounded by their own timeouts (jobs, VMs, API...)
AUTOFLUSH_TIMEOUT = 600.0  # seconds an autoflush may take before the daemon stops anyway


def deadline_seconds(config: Config) -> float:
    """How long a whole shutdown may take: cutting off an unreachable Zookeeper, handing the
    primary role over, an autoflush if configured, and the other steps."""
    seconds = config.get("zookeeper.session_timeout") + config.get("timers.relinquish_timeout")
    if config.get("vm.autoflush"):
        seconds += AUTOFLUSH_TIMEOUT
    return seconds + STEPS_MARGIN


class ZookeeperCutoff:
    """Once `stopping` is set: abandons the session when Zookeeper has been unreachable for
    the session timeout, and exits the process when the shutdown passes its deadline."""

    def __init__(self, zk: ZKHandler, stopping: threading.Event, deadline: float):
        self.zk = zk
        self.stopping = stopping
        self.deadline = deadline
        self.cut = threading.Event()  # set once the session was abandoned
        self.finished = threading.Event()  # set by the daemon when its shutdown is done
        self._disconnected_at: float | None = None if zk.connected else time.monotonic()
        zk.add_listener(self._on_session)
        self._thread = threading.Thread(target=self._run, name="shutdown", daemon=True)
        self._thread.start()

    def _on_session(self, state: str) -> None:
        if state == "connected":
            self._disconnected_at = None
        elif self._disconnected_at is None:
            self._disconnected_at = time.monotonic()

    def _run(self) -> None:
        self.stopping.wait()
        log.info("told to stop: the shutdown ends within %g s", self.deadline)
        ends = time.monotonic() + self.deadline
        while not self.finished.wait(POLL):
            since = self._disconnected_at
            away = 0.0 if since is None else time.monotonic() - since
            if not self.cut.is_set() and away >= self.zk.negotiated_session_timeout:
                log.warning("Zookeeper unreachable for %.1f s while stopping: the session is "
                            "over; the shutdown goes on without it", away)  # fmt: skip
                self.cut.set()
                self.zk.abandon()
            if time.monotonic() >= ends:
                log.error("the shutdown did not end within %g s; exiting now", self.deadline)
                os._exit(1)
