"""CachedView: the Store contract over a TreeMirror, for processes that answer many reads.

The API answers lists (every VM, every node) from memory instead of reading thousands of keys
per request. Reads of keys inside a mirrored subtree come from the mirror once it has loaded
(before that, from Zookeeper: a view never answers from a half-loaded copy); everything else,
and every versioned read (what verbs check before writing), goes to Zookeeper. Writes go
through the handler in one transaction, told what exists by the mirror; afterwards the view
waits (`TreeMirror.sync`) until the mirror shows them, so a client that changes something and
reads it back sees its change. What only a session has is reached through `.zk`.
"""

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pvc.zk import schema
from pvc.zk.handler import Key, ZKHandler, changes, resolve
from pvc.zk.mirror import TreeMirror
from pvc.zk.store import Store

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
    "base.ceph",  # storage records and statistics (volume sizes reach running guests)
    "base.networks",  # client networks, reservations, leases, ACLs (every node builds them)
    "base.provisioner",  # templates and profiles (the metadata service serves userdata)
)


def open_mirror(zk: ZKHandler, wait: float = 120.0) -> TreeMirror:
    """A mirror of MIRRORED on zk's session, loading; waits up to `wait` seconds for it to be
    loaded (0: return at once, the load goes on in the background)."""
    mirror = TreeMirror(zk.client, [resolve(key)[0] for key in MIRRORED])
    if not mirror.start(wait) and wait > 0:
        log.warning("the cluster tree is still loading into memory")
    return mirror


class CachedView(Store):
    def __init__(self, zk: ZKHandler, mirror: TreeMirror):
        self._zk = zk
        self.mirror = mirror
        # Built objects (a VM's whole record, say) per group path such as /domains/<uuid>,
        # each with the generation of its group when it was built; any change under the
        # group bumps the generation, which makes the object stale.
        self._memo: dict[str, tuple[int, Any]] = {}
        self._generation: dict[str, int] = {}
        self._memo_lock = threading.Lock()
        mirror.listen(lambda path, _: self._bump(path))

    @property
    def zk(self) -> ZKHandler:
        return self._zk

    def _group(self, path: str) -> str:
        """/domains/<uuid>/xml -> /domains/<uuid>: the root's child a path belongs to."""
        return "/".join(path.split("/")[:3])

    def _bump(self, path: str) -> None:
        group = self._group(path)
        with self._memo_lock:
            self._generation[group] = self._generation.get(group, 0) + 1
            self._memo.pop(group, None)

    def memoized(self, group: Key, build: Callable[[], Any]) -> Any:
        """`build()`, or what it returned last time if nothing under `group` changed since."""
        if not self.mirror.complete:
            return build()  # changes are not followed yet: nothing can be kept
        path = resolve(group)[0]
        # No lock to look: a change bumps the generation before it drops the entry, so an
        # entry of the generation read first was current at that moment.
        generation = self._generation.get(path, 0)
        entry = self._memo.get(path)
        if entry is not None and entry[0] == generation:
            return entry[1]
        value = build()
        with self._memo_lock:
            if self._generation.get(path, 0) == generation:
                self._memo[path] = (generation, value)
        return value

    def catch_up(self) -> None:
        """One round trip on the view's session (its answer comes after the events of every
        change committed before it), then the mirror applies what those events named."""
        if self.mirror.complete and self._zk.round_trip():
            self.mirror.sync()

    def _mirrored(self, path: str) -> bool:
        """True when the mirror answers for `path` (covered, and loaded at least once)."""
        return self.mirror.complete and self.mirror.covers(path)

    def read(self, key: Key) -> Any:
        path, kind = resolve(key)
        if not self._mirrored(path):
            return self._zk.read(key)
        return schema.decode(self.mirror.get(path), kind)

    def read_versioned(self, key: Key) -> tuple[Any, int]:
        return self._zk.read_versioned(key)

    def read_many(self, keys: Iterable[Key]) -> list[Any]:
        keys = list(keys)
        if not self.mirror.complete:
            return self._zk.read_many(keys)
        get, covers, decode = self.mirror.get, self.mirror.covers, schema.decode
        values = []
        for key in keys:  # called for thousands of keys per list: kept lean
            path, kind = resolve(key)
            values.append(decode(get(path), kind) if covers(path) else self._zk.read(key))
        return values

    def exists(self, key: Key) -> bool:
        path = resolve(key)[0]
        if not self._mirrored(path):
            return self._zk.exists(key)
        return self.mirror.get(path) is not None

    def children(self, key: Key) -> list[str]:
        path = resolve(key)[0]
        if not self._mirrored(path):
            return self._zk.children(key)
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
        self._zk.write(items, expect=expect, delete=delete, mirror=self.mirror)
        if self.mirror.complete:
            self.mirror.sync(SYNC_TIMEOUT)  # read-your-writes (False: reloading; reads lag)
        for key in [key for key, _ in items] + delete:
            self._bump(resolve(key)[0])  # our own change: stale at once, not at its event

    def delete(self, key: Key) -> None:
        self.write({}, delete=[key])
