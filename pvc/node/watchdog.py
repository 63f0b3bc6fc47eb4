"""The node watchdog: a small process beside the node daemon that drops what the primary holds
(its addresses, default route and service processes) when the daemon can no longer prove it
is the primary, and destroys this node's VMs when the daemon has not reached Zookeeper for
the self-fence time (timers.suicide_intervals).

Why a separate process: a daemon that is frozen (SIGSTOP, a stuck kernel call, swap storm) or
killed cannot remove its own floating address, yet the other coordinators take over as soon as
its Zookeeper session expires. The watchdog does not freeze with it. The daemon renews a lease
with it after every successful Zookeeper round trip (pvc.node.lease); the lease ends well before
the server could expire the session, and when it ends, or the daemon's pipe closes because the
daemon died, the watchdog removes the address at once.

Self-fencing: after each keepalive the daemon wrote, it moves the deadline by which it must
write the next one (the last write + suicide_intervals x keepalive_interval). The fence monitor
of the cluster trusts this: once the deadline (plus a margin) passed with no keepalive, it may
restart the node's VMs elsewhere without IPMI. So the watchdog destroys every running domain of
the node's libvirt at the deadline, whether the daemon is cut off, frozen or dead.

Protocol, one line per message on standard input:
  arm DEADLINE ITEM...          hold the items until DEADLINE (time.monotonic(), which is
                                the same clock in every process of the host); an item is
                                address=INTERFACE=CIDR, route=INTERFACE=GATEWAY (pvc's
                                default route) or process=PID=NAME (NAME: its comm)
  disarm                        the daemon released the address itself
  guard DEADLINE URI            destroy the running domains of libvirt URI at DEADLINE
  unguard                       the daemon stops cleanly: no self-fence
End of input: the daemon is gone; drop the items, and keep a guard to its deadline (a
daemon that died without `unguard` may have been declared dead), then exit. SIGTERM: drop the
items and exit.
"""

import logging
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass

from pvc.drivers import netlink
from pvc.drivers.libvirt import Hypervisor
from pvc.logs import FORMAT

log = logging.getLogger("pvc.watchdog")


@dataclass
class Armed:
    deadline: float
    items: tuple[str, ...]


def drop(armed: Armed | None, why: str) -> None:
    if armed is None:
        return
    for item in armed.items:
        kind, _, rest = item.partition("=")
        try:
            if kind == "address":
                interface, _, cidr = rest.partition("=")
                netlink.remove_address(interface, cidr)
                log.warning("removed %s from %s: %s", cidr, interface, why)
            elif kind == "route":
                interface, _, gateway = rest.partition("=")
                netlink.remove_default_route(interface, gateway)
                log.warning("removed the default route via %s: %s", gateway, why)
            elif kind == "process":
                pid, _, name = rest.partition("=")
                if _comm(int(pid)) == name:
                    os.kill(int(pid), signal.SIGKILL)
                    log.warning("killed %s (%s): %s", name, pid, why)
        except Exception as exc:  # nothing may stop the watchdog from dropping the rest
            log.error("could not drop %s: %s", item, exc)


def _comm(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return None


@dataclass
class Guard:
    deadline: float
    uri: str


SELF_FENCE_RETRY = 1.0  # seconds between tries while libvirt does not answer or a VM stays


def self_fence(guard: Guard) -> bool:
    """Destroys every running domain of the node's libvirt (a VM that may be running elsewhere
    by now must not go on here); True once none runs. Opens libvirt without events: the
    watchdog has no event loop, and needs none."""
    try:
        hypervisor = Hypervisor(guard.uri)
    except Exception as exc:  # nothing may stop the watchdog from trying again
        log.error("self-fence: cannot reach libvirt: %s", exc)
        return False
    try:
        return hypervisor.destroy_all_running()
    except Exception as exc:
        log.error("self-fence failed: %s", exc)
        return False
    finally:
        hypervisor.close()


def self_fence_until_done(guard: Guard) -> None:
    """Tries until no VM runs: the cluster counts on it. In a thread, so a libvirt that hangs
    cannot hold up the removal of the primary's addresses."""
    while not self_fence(guard):
        time.sleep(SELF_FENCE_RETRY)
    log.warning("self-fence: no word from Zookeeper in time; this node's VMs are off")


def parse(line: str, armed: Armed | None, guard: Guard | None) -> tuple[Armed | None, Guard | None]:
    """The watchdog's state after one message."""
    words = line.split()
    if words == ["disarm"]:
        return None, guard
    if words == ["unguard"]:
        return armed, None
    if len(words) >= 2 and words[0] == "arm":
        return Armed(float(words[1]), tuple(words[2:])), guard
    if len(words) == 3 and words[0] == "guard":
        return armed, Guard(float(words[1]), words[2])
    return armed, guard


def main() -> int:
    logging.basicConfig(level=logging.INFO, format=FORMAT)
    armed: Armed | None = None
    guard: Guard | None = None
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the daemon
    signal.signal(signal.SIGTERM, lambda *_: (drop(armed, "terminated"), sys.exit(0)))
    netlink.warm_up()  # a removal must not wait for imports when it matters
    fd: int | None = sys.stdin.fileno()
    pending = b""
    fencing: threading.Thread | None = None
    while fd is not None or guard is not None:
        deadlines = [state.deadline for state in (armed, guard) if state is not None]
        timeout = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        readable, _, _ = select.select([fd] if fd is not None else [], [], [], timeout)
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                drop(armed, "the node daemon exited")
                armed, fd = None, None
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                armed, guard = parse(line.decode(), armed, guard)
        now = time.monotonic()
        if armed is not None and armed.deadline <= now:
            drop(armed, "lease expired (the daemon lost contact with Zookeeper or froze)")
            armed = None
        if guard is not None and guard.deadline <= now:
            fencing = threading.Thread(target=self_fence_until_done, args=(guard,))
            fencing.start()
            guard = None
    if fencing is not None:
        fencing.join()  # the daemon is gone: finish the self-fence before leaving
    return 0


if __name__ == "__main__":
    sys.exit(main())
