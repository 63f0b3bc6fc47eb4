"""Who may read and write pvc's Zookeeper tree: the holders of the cluster secret, only.

Every node pvc creates carries one digest ACL, user `pvc` with `zookeeper.secret` as password
and every permission (kazoo's `default_acl`: plain creates, transactions, ephemerals and the
lock recipes' contender nodes alike), and every session authenticates as that user: kazoo
sends its `auth_data` on every connection, before any queued request, so a reconnection or a
new session is authenticated before its first read. Zookeeper ACLs are not inherited: each
node holds its own, which is why the migration to schema version 3 sets it on every node of
an older, open tree (`close_nodes`).

The chroot node of the connect string, if any, is the cluster's too: a session with the
secret creates it closed, or closes it when it finds it open (world:anyone), so nobody else
can list or add keys at the top of the tree. Without a chroot, pvc's top-level nodes are
closed and Zookeeper's root is left as it is (it is shared with whatever else uses the
ensemble).

A session without the secret, or with another one, is refused every read and write with
NoAuth: `check` turns that into AccessDenied, with one line, when the session starts, and the
handler does the same for any later request. `/private` has carried this same ACL since
before version 3 and keeps it (`ZKHandler.read_private` trusts only keys that carry it).
"""

import contextlib
from collections.abc import Iterable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NodeExistsError, NoNodeError
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl

from pvc.errors import AccessDenied

USER = "pvc"  # the Zookeeper digest user every session authenticates as
REFUSED = "Zookeeper refused access: zookeeper.secret is missing or does not match this cluster's"
# Requests sent at once by close_nodes: pipelined, without a reply kept waiting too long.
BATCH = 500


def auth_data(secret: str | None) -> list[tuple[str, str]] | None:
    """What kazoo sends at each connection to authenticate as the cluster's user."""
    return [("digest", f"{USER}:{secret}")] if secret else None


def acl(secret: str) -> list[Any]:
    """The ACL of every pvc node: all permissions to the secret's holders, none to others."""
    return [make_digest_acl(USER, secret, all=True)]


def refused() -> AccessDenied:
    return AccessDenied(REFUSED)


def check(client: KazooClient, secret: str | None) -> None:
    """At the start of a session: claims the chroot node (see the module docstring) and reads
    the top of the tree; raises AccessDenied if Zookeeper refuses this session."""
    try:
        if secret and client.chroot:
            _claim_chroot(client, secret)
        for path in ("/", "/schema"):  # the chroot node (or Zookeeper's root), a pvc root
            with contextlib.suppress(NoNodeError):
                client.get(path)
    except NoAuthError:
        raise refused() from None


def _claim_chroot(client: KazooClient, secret: str) -> None:
    try:
        client.create("/", b"", acl=acl(secret))
        return
    except NodeExistsError:
        pass
    if list(client.get_acls("/")[0]) == list(OPEN_ACL_UNSAFE):
        client.set_acls("/", acl(secret))


def close_nodes(client: KazooClient, paths: Iterable[str], secret: str) -> int:
    """Sets the cluster's ACL on every path (pipelined); a path gone meanwhile is skipped.
    Returns how many were closed; raises AccessDenied for a node pvc may not change."""
    closing = acl(secret)
    paths = list(paths)
    closed = 0
    for first in range(0, len(paths), BATCH):
        pending = [client.set_acls_async(path, closing) for path in paths[first : first + BATCH]]
        for answer in pending:
            try:
                answer.get()
                closed += 1
            except NoNodeError:
                pass
            except NoAuthError:
                raise refused() from None
    return closed
