"""Two Zookeeper (3.6+) requests kazoo 2.11 lacks, for loading and following whole trees.

- `multi_read`: many getData/getChildren in ONE request (Zookeeper's multiRead, opcode 22).
  Each operation answers on its own (a missing node fails its operation only); no watch is
  set. One request instead of thousands: kazoo spends most of a small read in its own
  machinery (an async result, a condition, a select per send and per receive).
- `barrier`: a request whose answer calls a hook on the connection's thread, in order with
  the watch events read off it: the events before the hook are every event of the
  transactions committed before the server answered it, whole.
- `add_recursive_watch`: a persistent recursive watch (addWatch, opcode 106) on a path: the
  server tells this connection of every creation, change and deletion at or below it, for
  as long as the connection lasts (a new connection must add it again), and never removes
  it after firing. kazoo does not know such events; `follow` hands them to a callback,
  `(event type, path)`, on the connection's thread, before kazoo dispatches its own watches.
"""

import threading
from collections import namedtuple
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import EXCEPTIONS
from kazoo.protocol.serialization import (
    GetChildren,
    GetData,
    Watch,
    int_struct,
    multiheader_struct,
    read_buffer,
    read_string,
    stat_struct,
    write_string,
)

DATA = GetData.type
CHILDREN = GetChildren.type
PERSISTENT_RECURSIVE = 1
# Reads per multiRead request: enough for few requests, few enough that one answer stays a
# modest buffer (kazoo reads an answer whole) and other requests are not queued long behind it.
BATCH = 200
EventCallback = Callable[[int, str], None]  # (kazoo EventType number, path without chroot)


class _MultiRead(namedtuple("_MultiRead", "operations on_answer", defaults=(None,))):
    """Request: (DATA or CHILDREN, full path) pairs; response: per operation the data
    (bytes, b"" when empty), the child names, or the exception that operation failed with.
    `on_answer()`, if given, is called as the answer is read (on the connection's thread)."""

    type = 22

    def serialize(self) -> bytes:
        out = bytearray()
        for kind, path in self.operations:
            out += multiheader_struct.pack(kind, False, -1)
            out += write_string(path)
            out.append(0)  # no watch
        out += multiheader_struct.pack(-1, True, -1)
        return bytes(out)

    def deserialize(self, buffer: bytes, offset: int) -> list[Any]:
        if self.on_answer is not None:
            self.on_answer()
        results: list[Any] = []
        while True:
            kind, done, _ = multiheader_struct.unpack_from(buffer, offset)
            offset += multiheader_struct.size
            if done:
                return results
            if kind == DATA:
                data, offset = read_buffer(buffer, offset)
                offset += stat_struct.size
                results.append(data or b"")
            elif kind == CHILDREN:
                count = int_struct.unpack_from(buffer, offset)[0]
                offset += int_struct.size
                names = []
                for _ in range(max(count, 0)):
                    name, offset = read_string(buffer, offset)
                    names.append(name)
                results.append(names)
            else:  # an error result
                code = int_struct.unpack_from(buffer, offset)[0]
                offset += int_struct.size
                results.append(EXCEPTIONS[code]())


class _AddWatch(namedtuple("_AddWatch", "path mode")):
    type = 106

    def serialize(self) -> bytes:
        return write_string(self.path) + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, buffer: bytes, offset: int) -> bool:
        return True


def multi_read(client: KazooClient, operations: list[tuple[int, str]]) -> Any:
    """Sends one multiRead of (DATA or CHILDREN, path) pairs; returns kazoo's async result."""
    chroot = client.chroot or ""
    result = client.handler.async_result()
    client._call(_MultiRead([(kind, chroot + path) for kind, path in operations]), result)
    return result


def barrier(client: KazooClient, on_answer: Callable[[], None]) -> Any:
    """Sends a request (a multiRead of nothing) whose answer calls `on_answer()` on the
    connection's thread as it is read, after every watch event sent before it and before
    any sent after it; returns kazoo's async result (failed if the connection is lost, and
    then `on_answer` is not called)."""
    result = client.handler.async_result()
    client._call(_MultiRead([], on_answer), result)
    return result


def add_recursive_watch(client: KazooClient, path: str) -> Any:
    """Adds a persistent recursive watch on `path` (which need not exist); async result."""
    result = client.handler.async_result()
    client._call(_AddWatch((client.chroot or "") + path, PERSISTENT_RECURSIVE), result)
    return result


_hooks_lock = threading.Lock()


def follow(client: KazooClient, callback: EventCallback) -> None:
    """Calls `callback(type, path)` for every watch event this client receives (on the
    connection's thread: hand work elsewhere). The connection object lives as long as the
    client, so the hook survives reconnections."""
    connection = client._connection
    with _hooks_lock:
        callbacks = getattr(connection, "_pvc_event_callbacks", None)
        if callbacks is None:
            callbacks = connection._pvc_event_callbacks = []
            kazoo_read = connection._read_watch_event

            def read_watch_event(buffer: bytes, offset: int) -> Any:
                event, _ = Watch.deserialize(buffer, offset)
                path = client.unchroot(event.path)
                for hook in list(callbacks):
                    hook(event.type, path)
                return kazoo_read(buffer, offset)

            connection._read_watch_event = read_watch_event
        callbacks.append(callback)


def unfollow(client: KazooClient, callback: EventCallback) -> None:
    with _hooks_lock:
        callbacks = getattr(client._connection, "_pvc_event_callbacks", [])
        if callback in callbacks:
            callbacks.remove(callback)
