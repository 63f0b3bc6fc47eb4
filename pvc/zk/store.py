"""Store: the one contract pvc's verbs (pvc.ops) need of the cluster's state.

Two implementations: `ZKHandler` reads and writes Zookeeper itself; `CachedView` reads what it
can from an in-memory mirror and writes through its handler. What only a Zookeeper session
has (ephemeral claims, private keys, watches, locks, the session itself) is not part of it:
reach it through `store.zk`, the handler behind either.
"""

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pvc.zk.schema import Key

if TYPE_CHECKING:
    from pvc.zk.handler import ZKHandler


class Store(Protocol):
    @property
    def zk(self) -> "ZKHandler":
        """The Zookeeper handler behind this store (itself, for a handler)."""
        ...

    def read(self, key: Key) -> Any:
        """The key's typed value, or None if it is missing or empty."""
        ...

    def read_versioned(self, key: Key) -> tuple[Any, int]:
        """(value, version) as Zookeeper has it now; a missing key reads as (None, -1)."""
        ...

    def read_many(self, keys: Iterable[Key]) -> list[Any]: ...

    def exists(self, key: Key) -> bool: ...

    def children(self, key: Key) -> list[str]:
        """Names of the key's children, sorted; a missing key has none."""
        ...

    def write(
        self,
        values: Mapping[Key, Any] | Iterable[tuple[Key, Any]],
        *,
        expect: Mapping[Key, int] | None = None,
        delete: Iterable[Key] = (),
    ) -> None:
        """Sets, creates and deletes keys in ONE transaction (see ZKHandler.write)."""
        ...

    def delete(self, key: Key) -> None: ...

    def catch_up(self) -> None:
        """Makes what this store reads at least as new as Zookeeper was when called: a lookup
        that found nothing calls it before it answers "does not exist", so a miss is never
        only a copy lagging behind another session's write."""
        ...

    def memoized(self, group: Key, build: Callable[[], Any]) -> Any:
        """`build()`, or what it returned before if nothing under `group` changed since."""
        ...
