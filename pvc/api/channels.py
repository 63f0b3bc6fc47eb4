"""The API's connections: waitress's channel, plus what pvc.api.connection_rules reads, JSON
errors, and TLS handshaken inside the channel rather than in `accept()`.

A TLS handshake in `accept()` runs on waitress's one event loop: every stalled handshake
stalled every client. Here the accepted socket is wrapped without a handshake and the channel
drives it non-blocking from the loop's readiness events, so a stalled handshake only ever
costs its own connection (closed after limits.TLS_HANDSHAKE_SECONDS).

Two things of TLS that waitress does not expect: a non-blocking SSL socket says "try again"
with SSLWantReadError/SSLWantWriteError instead of EAGAIN, and it may hold decrypted bytes
(`pending()`, up to a 16 KiB record) that select/poll cannot see, while waitress reads 8 KiB
at a time. The channel reads until nothing is pending; if it must stop first (a request is
now being served, and OpenSSL must not read in this thread while a worker writes), the server
finishes the read once the channel is readable again (GuardedServer.deferred_reads).
"""

import ssl
import time
from typing import Any

from waitress.channel import HTTPChannel

from pvc.api.http_errors import JsonErrorTask


class GuardedChannel(HTTPChannel):
    error_task_class = JsonErrorTask
    handshaking = False
    request_started = 0.0

    def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        self.parser_class = server.parser_factory
        super().__init__(server, sock, addr, adj, map)

    def received(self, data: bytes) -> bool:
        before = self.request
        taken = super().received(data)
        if self.request is not None and self.request is not before:
            self.request_started = time.time()  # these bytes began a request
        return taken


class TlsChannel(GuardedChannel):
    handshaking = True
    handshake_wants_write = False

    def readable(self) -> bool:
        if self.handshaking:
            return not self.handshake_wants_write
        return super().readable()

    def writable(self) -> bool:
        if self.handshaking:
            return self.handshake_wants_write
        return super().writable()

    def handle_write(self) -> None:
        if self.handshaking:
            self._handshake()
        else:
            super().handle_write()

    def handle_read(self) -> None:
        if self.handshaking:
            self._handshake()
            return
        while True:
            try:
                data = self.socket.recv(self.adj.recv_bytes)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError:  # ssl.SSLError included: a broken or reset connection
                self.handle_close()
                return
            if not data:
                self.handle_close()
                return
            self.last_activity = time.time()
            self.received(data)
            if self.socket is None or not self.socket.pending():
                return
            if not super().readable():
                self.server.deferred_reads.add(self)
                return

    def send(self, data: bytes, do_close: bool = True) -> int:
        try:
            return self.socket.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0
        except OSError:
            if do_close:
                self.handle_close()
            return 0

    def _handshake(self) -> None:
        try:
            self.socket.do_handshake()
        except ssl.SSLWantReadError:
            self.handshake_wants_write = False
        except ssl.SSLWantWriteError:
            self.handshake_wants_write = True
        except OSError:  # a failed handshake (not TLS, no shared cipher) or a reset
            self.handle_close()
        else:
            self.handshaking = False
            self.last_activity = time.time()
            self.handle_read()  # a request may have come with the handshake's last flight
