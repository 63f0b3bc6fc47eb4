"""ZKHandler: pvc's one door to Zookeeper, a thin layer over a kazoo client.

It connects to the coordinators' connect string with retry and backoff, tells listeners about
session state changes, reads and writes values typed by the schema, and writes many keys as
ONE Zookeeper transaction (`multi`) with the caller's version checks: either every change lands
or none does, and a concurrent writer makes the whole write fail with `ConcurrentChange`. A
write costs one round trip when what exists is known (from a mirror), two otherwise (one
pipelined batch of questions, then the transaction); never one per key or parent.

It has every member of `pvc.zk.store.Store`, the contract pvc's verbs use (a Protocol: met by
shape, so the contract depends on the handler and not the other way round); what only a
session has (ephemeral claims, private keys, watches, listeners) lives here alone.

Access: with `secret` (zookeeper.secret) the session authenticates as the cluster's user and
everything it creates is closed to anyone else (pvc.zk.access); a session Zookeeper refuses
raises AccessDenied, at `connect` and on any request. Size: no write larger than
`limits.TRANSACTION_MAX` is ever sent (pvc.zk.write_limit): it raises TooLarge instead.

Keys are schema names, optionally with their placeholders: `"base.config.maintenance"` or
`("node.keepalive", "node1")`. Raw paths are never accepted from callers.
"""

import functools
import logging
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kazoo.client import KazooState
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from pvc.errors import AccessDenied, ConcurrentChange, ConfigError, PvcError, Unavailable
from pvc.zk import access, bulk, schema
from pvc.zk.mirror import TreeMirror
from pvc.zk.schema import Key
from pvc.zk.write_limit import LimitedClient

log = logging.getLogger("pvc.zk")

# What a failed transaction operation raises when the tree was not as the write assumed.
CONFLICTS = (BadVersionError, NoNodeError, NodeExistsError, NotEmptyError)

# How a session state reads to listeners: "connected", "suspended" or "lost".
STATE_NAMES = {
    KazooState.CONNECTED: "connected",
    KazooState.SUSPENDED: "suspended",
    KazooState.LOST: "lost",
}


@functools.lru_cache(maxsize=1 << 17)
def resolve(key: Key) -> tuple[str, Any]:
    """A schema key (name, or name plus placeholder values) -> (path, value type); remembered,
    since lists of thousands of VMs resolve the same keys again and again."""
    if isinstance(key, str):
        return schema.path(key), schema.kind(key)
    name, *args = key
    return schema.path(name, *args), schema.kind(name)


class _KazooLog(logging.LoggerAdapter):
    """kazoo's logger, also catching the session timeout the server granted.

    kazoo keeps the negotiated timeout only in a log message; the primary lease must know it
    (the server may grant less than was asked for), so we read it from there.
    """

    def __init__(self, owner: "ZKHandler"):
        super().__init__(logging.getLogger("pvc.zk.kazoo"), {})
        self.owner = owner

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str) and msg.startswith("Session created") and len(args) >= 3:
            self.owner.negotiated_session_timeout = args[2] / 1000.0
        super().log(level, msg, *args, **kwargs)


def changes(values: Mapping[Key, Any] | Iterable[tuple[Key, Any]]) -> list[tuple[Key, Any]]:
    """What `write` takes (a mapping, or pairs) as a list of (key, value) pairs."""
    return list(values.items()) if isinstance(values, Mapping) else list(values)


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


class _ExpectedAbsent(Exception):
    """A write deletes a path its caller expects not to exist (-1): the path is there, so the
    caller's check has failed (a delete with version -1 would remove it unchecked)."""


class _Plan:
    """One attempt at a write: its transaction and, per operation, the errors that mean a
    caller's check failed (any other failure means what we took to exist was wrong).

    `exists` says whether a path exists once the write's deletes are done, learnt from the
    write itself, `expect`, the mirror (when loaded and covering the path) and, for the rest,
    one pipelined batch of questions to Zookeeper.
    """

    def __init__(self, zk: "ZKHandler", expected: dict[str, int], mirror: TreeMirror | None):
        self.zk = zk
        self.expected = dict(expected)
        self.mirror = mirror if mirror is not None and mirror.loaded else None
        self.txn = zk.client.transaction()
        self.caller_checks: list[tuple[type[Exception], ...]] = []
        self.exists: dict[str, bool] = {}
        self.created: set[str] = set()

    def build(
        self, items: list[tuple[tuple[str, Any], Any]], deleted: list[str]
    ) -> tuple[Any, list[tuple[type[Exception], ...]]]:
        """The transaction: deletes first (a key may be removed and written anew), then
        writes with their missing parents, then the remaining checks of `expect`."""
        self._delete(deleted)
        needed: set[str] = set()
        for (path, _), _ in items:
            needed.update((path, *_ancestors(path)))
        for path, version in self.expected.items():
            if version == -1:
                needed.update(_ancestors(path))
                self.exists.setdefault(path, False)  # as the caller says (its check decides)
            elif path not in self.exists:
                self.exists.update(dict.fromkeys((path, *_ancestors(path)), True))
        self._learn(needed)
        txn = self.txn
        for (path, kind), value in items:
            data = schema.encode(value, kind)
            want = self.expected.pop(path, None)
            if path in self.created:  # made earlier in this write as another key's parent
                self._op((), txn.set_data, path, data)
            elif want is not None and want >= 0:
                self._op((BadVersionError, NoNodeError), txn.set_data, path, data, version=want)
            elif want == -1 or not self.exists[path]:
                self._create_parents(path)
                self._op((NodeExistsError,) if want == -1 else (), txn.create, path, data)
                self.created.add(path)
            else:
                self._op((), txn.set_data, path, data)
        for path, version in self.expected.items():
            if version != -1:
                self._op((BadVersionError, NoNodeError), txn.check, path, version)
                continue
            # kazoo transactions cannot check absence: creating the key (and its missing
            # parents) and deleting them again asserts it without leaving a trace.
            made = [p for p in _ancestors(path) if not self._present(p)]
            for parent in made:
                self._op((), txn.create, parent, b"")
            self._op((NodeExistsError,), txn.create, path, b"")
            for made_path in reversed([*made, path]):
                self._op((), txn.delete, made_path)
        return txn, self.caller_checks

    def _op(self, caller_errors: tuple[type[Exception], ...], method: Callable, *args: Any,
            **kwargs: Any) -> None:  # fmt: skip
        method(*args, **kwargs)
        self.caller_checks.append(caller_errors)

    def _present(self, path: str) -> bool:
        return path in self.created or self.exists[path]

    def _create_parents(self, path: str) -> None:
        for parent in _ancestors(path):
            if not self._present(parent):
                self._op((), self.txn.create, parent, b"")
                self.created.add(parent)

    def _mirrored(self, path: str) -> bool:
        return self.mirror is not None and self.mirror.covers(path)

    def _learn(self, needed: set[str]) -> None:
        for path in sorted(needed, key=len):  # shallow first: an absent parent decides
            if path in self.exists:
                continue
            if any(self.exists.get(parent) is False for parent in _ancestors(path)):
                self.exists[path] = False
            elif self._mirrored(path):
                self.exists[path] = self.mirror.get(path) is not None
        unknown = [path for path in needed if path not in self.exists]
        if unknown:
            self.exists.update(self.zk.exists_batch(unknown))

    def _delete(self, roots: list[str]) -> None:
        """Deletes each root's subtree, bottom up, as the mirror or Zookeeper knows it."""
        paths = self.zk.subtrees_bottom_up([r for r in roots if not self._mirrored(r)])
        for root in roots:
            if self._mirrored(root):
                paths.extend(self._mirror_subtree(root))
        for path in paths:
            if path in self.exists:
                continue  # named twice (a root inside another)
            if self.expected.get(path) == -1:
                raise _ExpectedAbsent(path)
            expected = path in self.expected
            self._op(
                (BadVersionError, NoNodeError) if expected else (),
                self.txn.delete,
                path,
                version=self.expected.pop(path, -1),
            )
            self.exists[path] = False
        for path in paths:
            for parent in _ancestors(path):
                self.exists.setdefault(parent, True)

    def _mirror_subtree(self, root: str) -> list[str]:
        if self.mirror.get(root) is None:
            return []
        found, stack = [], [root]
        while stack:
            path = stack.pop()
            found.append(path)
            stack.extend(f"{path}/{name}" for name in self.mirror.children(path))
        return found[::-1]


class ZKHandler:
    """A connection to Zookeeper with typed, transactional reads and writes."""

    def __init__(
        self,
        hosts: str,
        *,
        connect_timeout: float = 5.0,
        session_timeout: float = 10.0,
        secret: str | None = None,
    ):
        self.hosts = hosts
        self.secret = secret
        self.connect_timeout = connect_timeout
        self.session_timeout = session_timeout
        self.negotiated_session_timeout = session_timeout  # updated at each (re)connection
        self._listeners: list[Callable[[str], None]] = []
        # Reconnection after a drop: keep trying forever, backing off to 1 s between tries.
        retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0)
        self.client = LimitedClient(
            hosts=hosts,
            timeout=session_timeout,
            connection_retry=retry,
            logger=_KazooLog(self),
            auth_data=access.auth_data(secret),
            default_acl=access.acl(secret) if secret else None,
        )
        self.client.add_listener(self._on_state)

    # --- connection -------------------------------------------------------------------------

    def connect(self) -> "ZKHandler":
        """Connects within `connect_timeout` seconds, or raises Unavailable and stops trying;
        raises AccessDenied (and stops) if Zookeeper refuses this session the tree."""
        try:
            with warnings.catch_warnings():  # access.check creates a missing chroot
                warnings.filterwarnings("ignore", "No chroot path exists")
                self.client.start(timeout=self.connect_timeout)
            self.call(access.check, self.client, self.secret)
        except (KazooTimeoutError, KazooException, OSError, Unavailable):
            self.close()
            raise Unavailable(
                f"cannot reach Zookeeper at {self.hosts} within {self.connect_timeout:g} s"
            ) from None
        except AccessDenied:
            self.close()
            raise
        return self

    def close(self) -> None:
        try:
            self.client.stop()
        finally:
            self.client.close()

    def abandon(self) -> None:
        """Ends the session on this side without waiting for the server: requests waiting for
        a reconnection (kazoo waits without a time limit) fail now, later ones at once, with
        Unavailable. For a process that stops while Zookeeper is unreachable."""
        self.client.stop()

    @property
    def connected(self) -> bool:
        return self.client.state == KazooState.CONNECTED

    @property
    def session_id(self) -> int | None:
        ids = self.client.client_id
        return ids[0] if ids else None

    def catch_up(self) -> None:
        """Nothing to do: a handler reads Zookeeper itself."""

    def round_trip(self) -> bool:
        """One cheap request to the server; True if it was answered."""
        try:
            self.call(self.client.exists, "/")
            return True
        except (Unavailable, KazooException):
            return False

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Calls `callback(state)` with "connected", "suspended" or "lost" on each change.

        Callbacks run on kazoo's event thread and must not block (hand work to a thread).
        """
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _on_state(self, state: str) -> None:
        name = STATE_NAMES[state]
        log.info("zookeeper session %s", name)
        for callback in list(self._listeners):
            try:
                callback(name)
            except Exception:  # a listener's bug must not break kazoo's thread
                log.exception("zookeeper state listener failed")

    # --- reads ------------------------------------------------------------------------------

    @property
    def zk(self) -> "ZKHandler":
        return self

    def exists(self, key: Key) -> bool:
        return self.call(self.client.exists, resolve(key)[0]) is not None

    def read(self, key: Key) -> Any:
        """The key's typed value, or None if it is missing or empty."""
        return self.read_versioned(key)[0]

    def read_versioned(self, key: Key) -> tuple[Any, int]:
        """(value, version) of a key; a missing key reads as (None, -1)."""
        path, kind = resolve(key)
        try:
            raw, stat = self.call(self.client.get, path)
        except NoNodeError:
            return None, -1
        return schema.decode(raw, kind), stat.version

    def read_many(self, keys: Iterable[Key]) -> list[Any]:
        """Reads several keys in multiRead requests of bulk.BATCH keys, all sent at once (one
        round trip's latency, and one request per batch instead of one per key)."""
        resolved = [resolve(key) for key in keys]
        batches = [
            bulk.multi_read(
                self.client, [(bulk.DATA, path) for path, _ in resolved[i : i + bulk.BATCH]]
            )
            for i in range(0, len(resolved), bulk.BATCH)
        ]
        answers = [answer for pending in batches for answer in self.call(pending.get)]
        values = []
        for (_, kind), answer in zip(resolved, answers, strict=True):
            if isinstance(answer, NoNodeError):
                values.append(None)
            elif isinstance(answer, NoAuthError):
                raise access.refused()
            elif isinstance(answer, Exception):
                raise answer
            else:
                values.append(schema.decode(answer, kind))
        return values

    def children(self, key: Key) -> list[str]:
        """Names of the key's children, sorted; a missing key has none."""
        try:
            return sorted(self.call(self.client.get_children, resolve(key)[0]))
        except NoNodeError:
            return []

    def memoized(self, group: Key, build: Callable[[], Any]) -> Any:
        """`build()`: without a cache (pvc.zk.cache.CachedView) nothing is kept."""
        return build()

    # --- writes -----------------------------------------------------------------------------

    def write(
        self,
        values: Mapping[Key, Any] | Iterable[tuple[Key, Any]],
        *,
        expect: Mapping[Key, int] | None = None,
        delete: Iterable[Key] = (),
        mirror: TreeMirror | None = None,
    ) -> None:
        """Sets, creates and deletes keys in ONE transaction: all of it happens, or none.

        `expect` checks versions the caller read earlier (-1: must not exist), so a
        read-check-write sequence fails as a whole if anyone changed what it read. Missing
        parents are created in the same transaction; deletes are recursive. Raises
        ConcurrentChange when a check fails.

        What exists is known without a round trip where possible: from this write itself,
        from `expect`, and from `mirror` (a loaded copy of the tree); what is still unknown
        is asked in one pipelined batch. An existing key is set without a version check
        unless the caller expected one. If the transaction fails only because such knowledge
        was wrong (the mirror lagged, a parent vanished), it is planned again once, asking
        Zookeeper everything.
        """
        items = [(resolve(key), value) for key, value in changes(values)]
        expected = {resolve(key)[0]: version for key, version in (expect or {}).items()}
        deleted = [resolve(key)[0] for key in delete]
        for attempt_mirror in (mirror, None):
            try:
                txn, caller_checks = _Plan(self, expected, attempt_mirror).build(items, deleted)
            except _ExpectedAbsent:
                if attempt_mirror is None:
                    break
                continue  # the mirror may lag: plan again from Zookeeper itself
            failed = self._commit(txn)
            if failed is None:
                return
            index, error = failed
            if isinstance(error, caller_checks[index]) or attempt_mirror is None:
                break
        raise ConcurrentChange(
            "the cluster state changed while this change was being written; "
            "nothing was written, try again"
        )

    def delete(self, key: Key) -> None:
        """Deletes a key and everything below it, in one transaction; missing is fine."""
        self.write({}, delete=[key])

    def exists_batch(self, paths: Iterable[str]) -> dict[str, bool]:
        """Whether each path exists, asked with pipelined requests (one round trip)."""
        asked = [(path, self.client.exists_async(path)) for path in paths]
        return {path: self.call(pending.get) is not None for path, pending in asked}

    def versions(self, keys: Iterable[Key]) -> dict[Key, int]:
        """The current version of each key that exists (missing keys are left out), asked
        with pipelined requests (one round trip): what a write's `expect` needs to add to
        many records without recreating one removed meanwhile."""
        asked = [(key, self.client.exists_async(resolve(key)[0])) for key in keys]
        found = {key: self.call(pending.get) for key, pending in asked}
        return {key: stat.version for key, stat in found.items() if stat is not None}

    def subtrees_bottom_up(self, paths: Iterable[str]) -> list[str]:
        """Every path under `paths` (and they themselves), deepest first, read level by level
        with pipelined requests; paths that do not exist are left out."""
        found: list[str] = []
        level = list(paths)
        while level:
            asked = [(path, self.client.get_children_async(path)) for path in level]
            level = []
            for path, pending in asked:
                try:
                    names = self.call(pending.get)
                except NoNodeError:
                    continue
                found.append(path)
                level.extend(f"{path.rstrip('/')}/{name}" for name in names)
        return found[::-1]

    def _commit(self, txn: Any) -> tuple[int, Exception] | None:
        """Commits; None on success, else (index, error) of the operation that failed."""
        if not txn.operations:
            return None
        results = self.call(txn.commit)
        for index, result in enumerate(results):
            if isinstance(result, Exception) and not isinstance(result, RolledBackError):
                if isinstance(result, CONFLICTS):
                    return index, result
                if isinstance(result, NoAuthError):
                    raise access.refused()
                raise Unavailable(f"Zookeeper refused the change: {type(result).__name__}")
        return None

    # --- watches ----------------------------------------------------------------------------

    def watch_data(self, key: Key, callback: Callable[[Any, int], Any]) -> Any:
        """Calls `callback(value, version)` now and on every change (version -1: deleted).

        Returning False from the callback stops the watch.
        """
        path, kind = resolve(key)

        def on_change(data: bytes | None, stat: Any, *_: Any) -> Any:
            return callback(schema.decode(data, kind), stat.version if stat else -1)

        return self.client.DataWatch(path, on_change)

    def watch_children(self, key: Key, callback: Callable[[list[str]], Any]) -> Any:
        """Calls `callback(sorted children)` now and on every change; False stops it."""
        path = resolve(key)[0]
        self.client.ensure_path(path)
        return self.client.ChildrenWatch(path, lambda names: callback(sorted(names)))

    # --- helpers ----------------------------------------------------------------------------

    def _private_acl(self) -> list[Any]:
        if not self.secret:
            raise PvcError("zookeeper.secret is not set: private keys cannot be protected")
        return access.acl(self.secret)

    def write_private(self, key: Key, value: Any) -> None:
        """Writes a key under /private that only sessions holding the cluster secret can read
        or change (a Zookeeper digest ACL, on its parents too, so nobody else can put a key
        there either); for credentials. Refused without a secret."""
        acl = self._private_acl()
        path, kind = resolve(key)
        private_root = resolve("base.private")[0]
        for ancestor in [a for a in _ancestors(path) if a.startswith(private_root)] + [path]:
            data = schema.encode(value, kind) if ancestor == path else b""
            try:
                self.call(self.client.create, ancestor, data, acl=acl)
            except NodeExistsError:
                try:
                    self.call(self.client.set_acls, ancestor, acl)
                    if ancestor == path:
                        self.call(self.client.set, path, data)
                except AccessDenied:
                    raise PvcError(
                        f"{ancestor} belongs to someone without the cluster secret"
                    ) from None

    def read_private(self, key: Key) -> Any:
        """A private key's value; None when it is missing, this session may not read it, or it
        is not protected by the cluster secret (then nobody may trust it)."""
        path, kind = resolve(key)
        try:
            raw, _ = self.call(self.client.get, path)
            acls, _ = self.call(self.client.get_acls, path)
        except (AccessDenied, NoNodeError):
            return None
        if not self.secret or list(acls) != self._private_acl():
            log.error("%s is not protected by the cluster secret: ignored", path)
            return None
        return schema.decode(raw, kind)

    def ensure(self, key: Key) -> None:
        """Creates an (empty) key and its parents if missing; for lock parents and such."""
        self.call(self.client.ensure_path, resolve(key)[0])

    def claim_ephemeral(self, key: Key, value: Any = None) -> bool:
        """Creates a key that lives exactly as long as this session.

        True if it is now ours (created, or already held by this session); False if another
        live session holds it.
        """
        path, kind = resolve(key)
        try:
            self.call(
                self.client.create, path, schema.encode(value, kind), ephemeral=True, makepath=True
            )
            return True
        except NodeExistsError:
            stat = self.call(self.client.exists, path)
            return stat is not None and stat.ephemeralOwner == self.session_id

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`func(*args, **kwargs)`, a kazoo request: session trouble raises Unavailable, a
        refusal (NoAuth) AccessDenied."""
        try:
            return func(*args, **kwargs)
        except (ConnectionLoss, SessionExpiredError, KazooTimeoutError) as exc:
            raise Unavailable(f"lost contact with Zookeeper ({type(exc).__name__})") from None
        except NoAuthError:
            raise access.refused() from None


def connect(config: Any) -> ZKHandler:
    """A connected handler for the node configuration `config` (a daemon's or the API's).

    The secret is required: the tree is readable only with it, and a daemon without it would
    create keys anyone could change."""
    secret = config.get("zookeeper.secret")
    if not secret:
        raise ConfigError(
            "zookeeper.secret is not set: the node daemon and the API need the cluster's "
            "secret (the same on every node; 'pvc config sample' generates one)"
        )
    return ZKHandler(
        config.zookeeper_hosts,
        connect_timeout=config.get("zookeeper.connect_timeout"),
        session_timeout=config.get("zookeeper.session_timeout"),
        secret=secret,
    ).connect()
