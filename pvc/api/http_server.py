"""Waitress's server, made to keep serving while clients misbehave.

- Connections are closed by the rules of pvc.api.connection_rules, checked every
  SWEEP_SECONDS on the event loop (waitress's own 120 s idle timeout never runs).
- New connections are always accepted: at the connection limit, the least recently active
  connections owed no answer are closed instead (waitress stops accepting, so a hundred idle
  sockets shut every client out).
- The limit is limits.CONNECTIONS_MAX, or less if the open-file limit cannot be raised to
  hold it; the event loop uses poll(), which, unlike select(), takes descriptors above 1023.
- Bodies and headers are bounded (413, 431), errors are JSON, an unauthenticated body is
  refused at its headers (pvc.api.request_parser).
"""

import functools
import logging
import resource
import socket
import ssl
import sys
import time
from collections.abc import Callable

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.server import TcpWSGIServer

from pvc import limits
from pvc.api import connection_rules
from pvc.api.auth import KeyCheck
from pvc.api.channels import GuardedChannel, TlsChannel
from pvc.api.request_parser import KeyCheckingParser

SWEEP_SECONDS = 0.5
FILES_PER_CONNECTION = 2  # its socket, and a temporary file for a large body or answer
FILES_RESERVED = 256  # Zookeeper, logs, the loop's trigger, libraries
# Bytes read from a socket at once: waitress's 8 KiB made a 2 MiB upload piece 256 reads on the
# one I/O thread, which then bounded an upload's throughput (pvc.ops.storage_upload).
RECV_BYTES = 1024 * 1024
log = logging.getLogger("pvc.api")


def raise_open_file_limit() -> int:
    """Raises this process's soft limit of open files to its hard limit; the files it may
    open now (sys.maxsize for no limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return sys.maxsize if soft == resource.RLIM_INFINITY else soft


def connection_limit(open_files: int) -> int:
    """Connections that fit in `open_files` descriptors, at most limits.CONNECTIONS_MAX."""
    room = (open_files - FILES_RESERVED) // FILES_PER_CONNECTION
    return max(1, min(limits.CONNECTIONS_MAX, room))


class GuardedServer(TcpWSGIServer):
    def __init__(
        self,
        app: Callable,
        sock: socket.socket,
        adj: Adjustments,
        parser_factory: Callable,
        max_connections: int,
    ) -> None:
        self.channel_class = TlsChannel if isinstance(sock, ssl.SSLSocket) else GuardedChannel
        self.parser_factory = parser_factory
        self.max_connections = max_connections
        self.deferred_reads: set[TlsChannel] = set()
        self.next_sweep = 0.0
        sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
        super().__init__(app, map={}, _sock=sock, adj=adj, bind_socket=False, sockinfo=sockinfo)

    def readable(self) -> bool:
        """Called by the event loop on every turn, before it waits."""
        now = time.time()
        if now >= self.next_sweep:
            self.next_sweep = now + SWEEP_SECONDS
            self.sweep(now)
        self.finish_deferred_reads()
        return self.accepting

    def sweep(self, now: float) -> None:
        for channel in list(self.active_channels.values()):
            if connection_rules.overdue(channel, now):
                channel.handle_close()

    def finish_deferred_reads(self) -> None:
        for channel in list(self.deferred_reads):
            if channel.socket is None:
                self.deferred_reads.discard(channel)
            elif channel.readable():
                self.deferred_reads.discard(channel)
                wasyncore.read(channel)

    def handle_accept(self) -> None:
        super().handle_accept()
        excess = len(self.active_channels) - self.max_connections
        if excess > 0:
            for channel in connection_rules.to_evict(self.active_channels.values(), excess):
                channel.handle_close()


def make_server(
    app: Callable,
    sock: socket.socket,
    url_scheme: str,
    threads: int,
    keys: KeyCheck,
    public: frozenset[tuple[str, str]],
) -> GuardedServer:
    """The server of `app` on listening socket `sock` (TLS-wrapped for TLS); `public` are the
    (method, path) of the endpoints that need no API key."""
    max_connections = connection_limit(raise_open_file_limit())
    adj = Adjustments(
        sockets=[sock],
        url_scheme=url_scheme,
        threads=threads,
        ident="pvc",
        max_request_body_size=limits.BODY_MAX + 1,  # waitress refuses at this many bytes
        max_request_header_size=limits.HEADER_MAX + 1,
        asyncore_use_poll=True,
        recv_bytes=RECV_BYTES,
    )
    parser_factory = functools.partial(KeyCheckingParser, keys=keys, public=public)
    if max_connections < limits.CONNECTIONS_MAX:
        log.warning(
            "API accepts only %d connections (of %d): the open-file limit is too low; raise "
            "it (LimitNOFILE= in the systemd unit, or ulimit -n)",
            max_connections,
            limits.CONNECTIONS_MAX,
        )
    else:
        log.info("API accepts up to %d connections", max_connections)
    return GuardedServer(app, sock, adj, parser_factory, max_connections)
