"""The node daemon's side of the watchdog (pvc.node.watchdog): starts it, tells it things.

One watchdog process per daemon enforces both deadlines the daemon may fail to meet while
frozen or dead: the primary lease (what the primary holds: addresses, service processes) and
the self-fence (the VMs).
"""

import logging
import subprocess
import threading

from pvc import zipapp

log = logging.getLogger("pvc.node.watchdog")


class WatchdogProcess:
    def __init__(self) -> None:
        self._process = subprocess.Popen(
            zipapp.command("from pvc.node.watchdog import main; main()"),
            stdin=subprocess.PIPE,
            pass_fds=zipapp.pinned_descriptors(),
        )
        self._guarded = False  # a self-fence deadline is armed
        self._lock = threading.Lock()  # one line at a time, from any thread

    def tell(self, message: str) -> None:
        """Sends one line of the watchdog's protocol."""
        word = message.split()[0]
        if word in ("guard", "unguard"):
            self._guarded = word == "guard"
        try:
            assert self._process.stdin is not None
            with self._lock:
                self._process.stdin.write(message.encode() + b"\n")
                self._process.stdin.flush()
        except (OSError, ValueError):
            log.error("the node watchdog is gone (exit code %s)", self._process.poll())

    def close(self) -> None:
        """Ends the watchdog: it drops what the primary still holds and exits. One
        with a self-fence deadline (not told `unguard`: the cluster may count on it) is left
        to keep it, and exits after it."""
        if self._process.stdin:
            self._process.stdin.close()
        if self._guarded:
            log.warning("the watchdog keeps this node's self-fence deadline after the daemon")
            return
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()


def address_item(interface: str, cidr: str) -> str:
    """The lease item (pvc.node.lease.hold) of an address the primary added."""
    return f"address={interface}={cidr}"


def route_item(interface: str, gateway: str) -> str:
    """The lease item of the default route via `gateway` the primary added on `interface`."""
    return f"route={interface}={gateway}"


def process_item(pid: int, name: str) -> str:
    """The lease item of a process the primary runs (`name`: its /proc/PID/comm, so a PID
    reused by another program is left alone)."""
    return f"process={pid}={name}"
