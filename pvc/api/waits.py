"""Waits in API requests (`wait=true`), which must never hold the server hostage.

A waiting request holds one of waitress's threads (pvc.api.server.THREADS) until the VM got
where it was sent, woken by the mirror's changes (pvc.ops.vm_state.wait_for), or until its
timeout. At most MAX_WAITS requests wait at once, so FREE_THREADS threads always remain for
every other request; a wait beyond the cap answers at once as a wait that ran out does: 202
with the VM's record and a message saying so. The CLI's --wait follows the VM itself.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

FREE_THREADS = 8  # threads no wait may hold: GET /, single VMs, lists, other verbs
MAX_WAITS = 40  # pvc.api.server.THREADS is MAX_WAITS + FREE_THREADS
_slots = threading.BoundedSemaphore(MAX_WAITS)


@contextmanager
def wait_slot() -> Iterator[bool]:
    """True (and a slot held until the block ends) if fewer than MAX_WAITS requests wait."""
    taken = _slots.acquire(blocking=False)
    try:
        yield taken
    finally:
        if taken:
            _slots.release()
