"""A read cache of whole subtrees: the ZKHandler interface over a TreeMirror.

The API answers lists (every VM, every node) from memory instead of reading thousands of keys
per request. `CachedView` offers the ZKHandler interface: reads of keys inside a cached
subtree come from the cache; everything else, and every versioned read (what verbs check
before writing), goes to Zookeeper. After its own writes it waits (briefly) until the cache
shows them, so a client that changes something and reads it back sees its change.
"""

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pvc.zk import schema
from pvc.zk.handler import Key, ZKHandler, changes, resolve
from pvc.zk.mirror import TreeMirror

log = logging.getLogger("pvc.zk.cache")

SYNC_TIMEOUT = 2.0
# What a process keeps in memory: small, or read in bulk (every VM for a list).
MIRRORED = (
    "base.schema",
    "base.config",
    "base.nodes",
    "base.domains",
    "base.names",
    "base.jobs",
)


def open_mirror(zk: ZKHandler) -> TreeMirror:
    """A mirror of MIRRORED on zk's session, loaded (or, if slow, still loading)."""
    mirror = TreeMirror(zk.client, [resolve(key)[0] for key in MIRRORED])
    if not mirror.start():
        log.warning("the cluster tree is still loading into memory")
    return mirror


class CachedView:
    def __init__(self, zk: ZKHandler, mirror: TreeMirror):
        self.zk = zk
        self.mirror = mirror
        # Built objects (a VM's whole record, say) per group path such as /domains/<uuid>,
        # each with the generation of its group when it was built; any change under the
        # group bumps the generation, which makes the object stale.
        self._memo: dict[str, tuple[int, Any]] = {}
        self._generation: dict[str, int] = {}
        self._memo_lock = threading.Lock()
        mirror.listen(lambda path, _: self._bump(path))

    def _group(self, path: str) -> str:
        """/domains/<uuid>/xml -> /domains/<uuid>: the root's child a path belongs to."""
        return "/".join(path.split("/")[:3])

    def _bump(self, path: str) -> None:
        group = self._group(path)
        with self._memo_lock:
            self._generation[group] = self._generation.get(group, 0) + 1
            self._memo.pop(group, None)

    def memoized(self, group: Key, build: Any) -> Any:
        """`build()`, or what it returned last time if nothing under `group` changed since."""
        path = resolve(group)[0]
        with self._memo_lock:
            generation = self._generation.get(path, 0)
            entry = self._memo.get(path)
        if entry is not None and entry[0] == generation:
            return entry[1]
        value = build()
        with self._memo_lock:
            if self._generation.get(path, 0) == generation:
                self._memo[path] = (generation, value)
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.zk, name)  # everything not overridden: straight to Zookeeper

    def _node(self, key: Key) -> tuple[bool, bytes | None]:
        """(cached?, the cached data or None) for a key."""
        path, _ = resolve(key)
        if not self.mirror.covers(path):
            return False, None
        return True, self.mirror.get(path)

    def read(self, key: Key) -> Any:
        cached, data = self._node(key)
        if not cached:
            return self.zk.read(key)
        return schema.decode(data, resolve(key)[1])

    def read_many(self, keys: Iterable[Key]) -> list[Any]:
        return [self.read(key) for key in keys]

    def exists(self, key: Key) -> bool:
        cached, node = self._node(key)
        return node is not None if cached else self.zk.exists(key)

    def children(self, key: Key) -> list[str]:
        path = resolve(key)[0]
        if not self.mirror.covers(path):
            return self.zk.children(key)
        return self.mirror.children(path)

    def write(
        self,
        values: Mapping[Key, Any] | Iterable[tuple[Key, Any]],
        *,
        expect: Mapping[Key, int] | None = None,
        delete: Iterable[Key] = (),
    ) -> None:
        items = changes(values)
        delete = list(delete)
        self.zk.write(items, expect=expect, delete=delete)
        self._await(items, delete)
        for key in [key for key, _ in items] + delete:
            self._bump(resolve(key)[0])  # our own change: stale at once, not at its event

    def delete(self, key: Key) -> None:
        self.write({}, delete=[key])

    def _await(self, items: list[tuple[Key, Any]], deleted: list[Key]) -> None:
        """Waits until the cache shows this process's own write (read-your-writes)."""
        wanted = [(key, schema.encode(value, resolve(key)[1])) for key, value in items]
        deadline = time.monotonic() + SYNC_TIMEOUT
        while time.monotonic() < deadline:
            stale = [key for key, data in wanted if self._stale(key, data)]
            stale += [key for key in deleted if self._node(key)[1] is not None]
            if not stale:
                return
            time.sleep(0.002)

    def _stale(self, key: Key, data: bytes) -> bool:
        cached, cached_data = self._node(key)
        return cached and cached_data != data
