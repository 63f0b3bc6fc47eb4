"""Zookeeper locks as context managers: exclusive, read (shared) and write.

Guarantees (kazoo's lock recipes, ephemeral-sequential contender nodes under the lock key):
- `exclusive_lock`: at most one holder at a time, cluster wide (kazoo `Lock`).
- `read_lock`: any number of readers together, never together with a writer (`ReadLock`).
- `write_lock`: one writer, with no readers (`WriteLock`).
Waiters are served in order of arrival. Acquiring gives up after `timeout` seconds with
`pvc.errors.LockTimeout`, and removes its contender node, so a timed-out waiter leaves no trace.

On session loss: the holder's contender node is ephemeral, so when the session EXPIRES (state
"lost") the server deletes it and the next waiter gets the lock, whether or not the holder
noticed. While the connection is only SUSPENDED the holder still owns the lock on the server
but cannot be sure of it. `Lock.held` turns False as soon as the session is suspended or lost,
so a holder doing long work can check it before each step that relies on the lock; code that
must never act without the lock (primary takeover) must stop acting when `held` goes False.
"""

import contextlib
import threading
import uuid
from collections.abc import Callable
from typing import Any

from kazoo.exceptions import KazooException
from kazoo.exceptions import LockTimeout as KazooLockTimeout
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.recipe import lock as recipes

from pvc.errors import LockTimeout, Unavailable
from pvc.zk.handler import Key, resolve
from pvc.zk.store import Store


class Lock:
    """One acquisition of a Zookeeper lock; use as `with exclusive_lock(zk, key, 0.4):`."""

    def __init__(self, zk: Store, key: Key, recipe: Callable[..., Any], timeout: float):
        self.zk = zk.zk  # a handler, or the one behind a view
        self.path = resolve(key)[0]
        self.timeout = timeout
        self._recipe = recipe(self.zk.client, self.path, identifier=str(uuid.uuid1()))
        self._valid = threading.Event()

    @property
    def held(self) -> bool:
        """True while acquired and the session has stayed connected since."""
        return self._valid.is_set()

    def _on_state(self, state: str) -> None:
        if state != "connected":
            self._valid.clear()

    def __enter__(self) -> "Lock":
        try:
            acquired = self._recipe.acquire(timeout=self.timeout)
        except (KazooLockTimeout, KazooTimeoutError):
            acquired = False
        except KazooException as exc:
            raise Unavailable(f"cannot take lock {self.path}: {type(exc).__name__}") from None
        if not acquired:
            raise LockTimeout(f"lock {self.path} is held elsewhere (waited {self.timeout:g} s)")
        self._valid.set()
        self.zk.add_listener(self._on_state)
        return self

    def __exit__(self, *_: Any) -> None:
        self._valid.clear()
        self.zk.remove_listener(self._on_state)
        # If the session is gone, so is the contender node: there is nothing to release.
        with contextlib.suppress(KazooException):
            self._recipe.release()


def exclusive_lock(zk: Store, key: Key, timeout: float) -> Lock:
    """Mutual exclusion: one holder cluster wide."""
    return Lock(zk, key, recipes.Lock, timeout)


def read_lock(zk: Store, key: Key, timeout: float) -> Lock:
    """Shared side of a read/write lock: many readers, no writer."""
    return Lock(zk, key, recipes.ReadLock, timeout)


def write_lock(zk: Store, key: Key, timeout: float) -> Lock:
    """Exclusive side of a read/write lock: one writer, no readers."""
    return Lock(zk, key, recipes.WriteLock, timeout)
