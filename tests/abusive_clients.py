"""Clients that hold an API's connections without using them, and one that uses it: for the
load test (tests/integration/test_api_load.py) and scripts/bench/api-abuse.

A Crowd opens, to one address and port, connections of these kinds:
- idle: a TCP connection that sends nothing (to a TLS port: a handshake never begun);
- stalled handshake: a TLS record header, then nothing;
- half-open: part of a request's headers, then nothing, as a client that vanished mid-request
  looks from the server;
- slowloris: a request's headers one byte every `interval` seconds, never finished.
It then tells which of them the server has closed.
"""

import contextlib
import selectors
import socket
import ssl
import threading
import time
import urllib.request

HEADERS_START = b"GET /api/v1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
TLS_RECORD_START = b"\x16\x03\x01\x02\x00"  # a handshake record of 512 bytes, begun


class Crowd:
    def __init__(self, host: str, port: int, context: ssl.SSLContext | None = None):
        self.address = (host, port)
        self.context = context  # for half-open and slowloris connections to a TLS port
        self.open: dict[str, list[socket.socket]] = {}
        self.closed: dict[str, int] = {}  # by kind: how many the server closed
        self.opened: dict[socket.socket, float] = {}  # time.monotonic() of each connection
        self.lock = threading.Lock()  # an SSL socket is used by one thread at a time
        self.stop = threading.Event()
        self.trickler: threading.Thread | None = None

    def _connect(self, kind: str, tls: bool, first: bytes = b"") -> None:
        sock = socket.create_connection(self.address, timeout=10)
        if tls:
            sock = self.context.wrap_socket(sock, server_hostname=self.address[0])
        if first:
            sock.sendall(first)
        self.open.setdefault(kind, []).append(sock)
        self.opened[sock] = time.monotonic()

    def idle(self, count: int) -> None:
        for _ in range(count):
            self._connect("idle", False)

    def stalled_handshakes(self, count: int) -> None:
        for _ in range(count):
            self._connect("stalled handshake", False, TLS_RECORD_START)

    def half_open(self, count: int) -> None:
        for _ in range(count):
            self._connect("half-open", self.context is not None, HEADERS_START)

    def slowloris(self, count: int, interval: float = 1.0) -> None:
        for _ in range(count):
            self._connect("slowloris", self.context is not None, HEADERS_START[:1])
        self.trickler = threading.Thread(target=self._trickle, args=(interval,), daemon=True)
        self.trickler.start()

    def _trickle(self, interval: float) -> None:
        while not self.stop.wait(interval):
            with self.lock:
                for sock in self.open.get("slowloris", []):
                    with contextlib.suppress(OSError):  # closed: wait_closed will see it
                        sock.send(b"a")  # the start of a header line that never ends

    def counts(self) -> dict[str, int]:
        """Connections the server has not closed yet, by kind."""
        return {kind: len(socks) for kind, socks in self.open.items()}

    def reap(self, wait: float) -> None:
        """Forgets the connections the server closed, waiting up to `wait` seconds for one."""
        with selectors.DefaultSelector() as selector:
            for kind, socks in self.open.items():
                for sock in socks:
                    selector.register(sock, selectors.EVENT_READ, kind)
            ready = selector.select(wait) if selector.get_map() else []
        with self.lock:
            for key, _ in ready:
                if _closed(key.fileobj):
                    self._forget(key.data, key.fileobj)
                    self.closed[key.data] = self.closed.get(key.data, 0) + 1

    def renew(self, age: float) -> None:
        """Closes the connections opened more than `age` seconds ago (the caller opens new
        ones): a crowd that always stays, even where the server could not close it (a
        floating address gone from under it)."""
        cutoff = time.monotonic() - age
        with self.lock:
            for kind, socks in self.open.items():
                for sock in [sock for sock in socks if self.opened[sock] < cutoff]:
                    self._forget(kind, sock)

    def _forget(self, kind: str, sock: socket.socket) -> None:
        self.open[kind].remove(sock)
        del self.opened[sock]
        sock.close()

    def wait_closed(self, timeout: float) -> dict[str, int]:
        """Waits up to `timeout` seconds for the server to close every connection; those it
        has not closed, by kind."""
        deadline = time.monotonic() + timeout
        while any(self.open.values()) and (left := deadline - time.monotonic()) > 0:
            self.reap(min(0.5, left))
        return self.counts()

    def close(self) -> None:
        self.stop.set()
        if self.trickler:
            self.trickler.join(5)
        for socks in self.open.values():
            for sock in socks:
                sock.close()
        self.open.clear()
        self.opened.clear()


def _closed(sock: socket.socket) -> bool:
    """True if the server closed `sock`, which select found readable."""
    sock.settimeout(0.1)
    try:
        while sock.recv(4096):
            pass  # an answer before the close (none is expected): read past it
        return True
    except (ssl.SSLWantReadError, TimeoutError):
        return False
    except OSError:  # reset
        return True


def timed_get(url: str, key: str, context: ssl.SSLContext | None, timeout: float) -> float:
    """Seconds a GET of `url` took, on a new connection; raises unless it answered (urllib's
    HTTPError for a 4xx or 5xx, OSError for no answer within `timeout`)."""
    request = urllib.request.Request(url, headers={"X-Api-Key": key})
    started = time.monotonic()
    with urllib.request.urlopen(request, context=context, timeout=timeout) as reply:
        reply.read()
    return time.monotonic() - started
