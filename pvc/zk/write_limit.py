"""A kazoo client that never sends a write larger than `limits.TRANSACTION_MAX` bytes.

Why: Zookeeper does not refuse a request larger than its `jute.maxbuffer` (1 MiB), it drops
the connection it came on: every other request of the session fails with it, and a caller
that tries again (a daemon recording a huge libvirt error) loses its connection again and
again. So each write (create, set, ACL change, transaction) is measured as it will be sent,
paths, values and ACLs serialised, before it is queued; one over the limit fails alone with
TooLarge, naming its size and the limit, and nothing of it reaches the server. Every write
pvc makes goes through here: the handler's transactions, ephemerals, private keys and the
lock recipes' contender nodes.
"""

from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Create, Create2, SetACL, SetData, Transaction

from pvc import limits
from pvc.errors import TooLarge

WRITES = frozenset(kind.type for kind in (Create, Create2, SetData, SetACL, Transaction))


def too_large(size: int) -> TooLarge:
    return TooLarge(
        f"the change is {size:,} bytes, more than the {limits.TRANSACTION_MAX:,} bytes "
        "Zookeeper takes in one write; nothing was written"
    )


class LimitedClient(KazooClient):
    """KazooClient whose writes over the limit fail with TooLarge instead of being sent."""

    def _call(self, request: Any, async_object: Any) -> Any:
        if request.type in WRITES:
            size = len(request.serialize())
            if size > limits.TRANSACTION_MAX:
                async_object.set_exception(too_large(size))
                return False
        return super()._call(request, async_object)
