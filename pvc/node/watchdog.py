"""The primary watchdog: a small process beside the node daemon that drops the floating address
when the daemon can no longer prove it is the primary.

Why a separate process: a daemon that is frozen (SIGSTOP, a stuck kernel call, swap storm) or
killed cannot remove its own floating address, yet the other coordinators take over as soon as
its Zookeeper session expires. The watchdog does not freeze with it. The daemon renews a lease
with it after every successful Zookeeper round trip (pvc.node.lease); the lease ends well before
the server could expire the session, and when it ends, or the daemon's pipe closes because the
daemon died, the watchdog removes the address at once.

Protocol, one line per message on standard input:
  arm DEADLINE INTERFACE CIDR   hold the address until DEADLINE (time.monotonic(), which is
                                the same clock in every process of the host)
  disarm                        the daemon released the address itself
End of input: the daemon is gone; drop the address and exit. SIGTERM: the same.
"""

import logging
import os
import select
import signal
import sys
import time
from dataclasses import dataclass

from pvc.drivers import netlink
from pvc.logs import FORMAT

log = logging.getLogger("pvc.watchdog")


@dataclass
class Armed:
    deadline: float
    interface: str
    cidr: str


def drop(armed: Armed | None, why: str) -> None:
    if armed is None:
        return
    try:
        netlink.remove_address(armed.interface, armed.cidr)
        log.warning("removed %s from %s: %s", armed.cidr, armed.interface, why)
    except Exception as exc:  # nothing may stop the watchdog from trying again
        log.error("could not remove %s from %s: %s", armed.cidr, armed.interface, exc)


def parse(line: str) -> Armed | None:
    words = line.split()
    if words and words[0] == "arm" and len(words) == 4:
        return Armed(float(words[1]), words[2], words[3])
    return None


def main() -> int:
    logging.basicConfig(level=logging.INFO, format=FORMAT)
    armed: Armed | None = None
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the daemon
    signal.signal(signal.SIGTERM, lambda *_: (drop(armed, "terminated"), sys.exit(0)))
    netlink.warm_up()  # a removal must not wait for imports when it matters
    fd = sys.stdin.fileno()
    pending = b""
    while True:
        timeout = None if armed is None else max(0.0, armed.deadline - time.monotonic())
        readable, _, _ = select.select([fd], [], [], timeout)
        if not readable:
            drop(armed, "lease expired (the daemon lost contact with Zookeeper or froze)")
            armed = None
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            drop(armed, "the node daemon exited")
            return 0
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            text = line.decode()
            armed = None if text.strip() == "disarm" else parse(text) or armed
        if armed is not None and armed.deadline <= time.monotonic():
            drop(armed, "lease expired before it reached the watchdog")
            armed = None


if __name__ == "__main__":
    sys.exit(main())
