"""The primary lease: how long this node may keep acting as primary without hearing from
Zookeeper.

Timeline (T = the session timeout the server granted, L = LEASE_FRACTION x T):
- The lease is renewed after every successful round trip to Zookeeper in the session in which
  this node became primary, to (time the request was SENT) + L. The server heard from us at or
  after that time, so it cannot expire the session before sent + T.
- When the lease runs out (the connection is suspended or lost, or the daemon froze), the
  daemon stops its primary services by itself, and the watchdog process (pvc.node.watchdog)
  drops what the primary holds even if the daemon is frozen or dead: every address the
  primary services added (floating addresses, gateways) and every process they run (dnsmasq).
  A service tells the lease with `hold(item)` before it adds an address or starts a process,
  and `unhold(item)` once it removed it; items are watchdog words (`address(...)`,
  `process(...)`).
- Other coordinators take over only after the session's liveness node is gone (at sent + T at
  the earliest) plus the 0.5 s transition delay, so the old primary has dropped everything at
  least (1 - LEASE_FRACTION) x T + 0.5 s before the new one starts anything.
A renewal in a different session (after the old one was lost) never counts.

The renew loop is a thread of its own, not a controller (pvc.node.controller): it is timing-
critical (a renewal late by a few tenths of L lets the lease lapse and the primary drop its
services), so it must never queue behind anything, while a controller's workers are shared by
its keys and retry a failing step with a backoff of seconds; and it has no keys.
"""

import logging
import threading
import time

from pvc.node.watchdog_process import WatchdogProcess
from pvc.zk.handler import ZKHandler

LEASE_FRACTION = 0.6
log = logging.getLogger("pvc.node.lease")


class PrimaryLease:
    """The lease, its renewal thread and the watchdog process that enforces it."""

    def __init__(self, zk: ZKHandler, watchdog: WatchdogProcess):
        self.zk = zk
        self._held: dict[str, None] = {}  # watchdog items, in the order they were held
        self._session: int | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        # one message to the watchdog at a time, each made when it is sent: a renewal's older
        # list of items (or deadline) can never follow a newer one, nor an arm the disarm
        self._telling = threading.Lock()
        self._stop = threading.Event()
        self._watchdog = watchdog
        self._thread = threading.Thread(target=self._renew_loop, name="lease", daemon=True)
        self._thread.start()

    @property
    def duration(self) -> float:
        return LEASE_FRACTION * self.zk.negotiated_session_timeout

    def valid(self) -> bool:
        with self._lock:
            return self._session is not None and time.monotonic() < self._expires

    def grant(self) -> bool:
        """Starts holding the lease in the current session; True once a round trip confirms it."""
        with self._lock:
            self._session = self.zk.session_id
        return self._renew()

    def release(self) -> None:
        with self._telling:
            with self._lock:
                self._session = None
                self._expires = 0.0
            self._watchdog.tell("disarm")

    def hold(self, item: str) -> None:
        """The watchdog drops `item` too when the lease ends; told now if the lease is held,
        so an address added right before a freeze is not missed."""
        with self._lock:
            self._held[item] = None
        self._arm()

    def unhold(self, item: str) -> None:
        with self._lock:
            self._held.pop(item, None)

    def _arm(self) -> None:
        """Tells the watchdog the current deadline and items (nothing while not held)."""
        with self._telling:
            with self._lock:
                if self._session is None:
                    return
                message = f"arm {self._expires:.6f} {' '.join(self._held)}".rstrip()
            self._watchdog.tell(message)

    def close(self) -> None:
        """Stops renewing and releases the lease."""
        self._stop.set()
        self.release()

    def _renew(self) -> bool:
        session = self._session
        if session is None:
            return False
        sent = time.monotonic()
        if not self.zk.round_trip():
            return False
        with self._lock:
            if self._session != session or self.zk.session_id != session:
                return False  # released meanwhile, or the session changed under us
            self._expires = max(self._expires, sent + self.duration)
        self._arm()
        return True

    def _renew_loop(self) -> None:
        while not self._stop.wait(max(0.05, self.duration / 10)):
            try:
                self._renew()
            except Exception:
                log.exception("lease renewal failed")
