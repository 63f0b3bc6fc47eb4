"""`pvc api serve`: the API application under waitress, over HTTP or TLS.

Waitress has no TLS of its own; we hand it a listening socket wrapped by Python's `ssl`. The
TLS handshake then happens inside `accept()` on waitress's main loop, so a handshake is given
at most HANDSHAKE_TIMEOUT seconds: a client that stalls it delays other new connections by at
most that much, and never hangs the server.
"""

import logging
import signal
import socket
import ssl
import sys
from typing import Any

from pvc.config import Config
from pvc.errors import ConfigError

HANDSHAKE_TIMEOUT = 5.0
IP_FREEBIND = 15  # linux/in.h (Python's socket module lacks it): bind an address not yet here
# waitress worker threads: requests served at once (a waiting request holds one).
THREADS = 48  # pvc.api.waits: at most 40 of them wait, 8 are always free
log = logging.getLogger("pvc.api")


class _TlsListener(ssl.SSLSocket):
    """A listening TLS socket whose accepted connections handshake within a time limit."""

    def accept(self) -> tuple[ssl.SSLSocket, Any]:
        raw, address = socket.socket.accept(self)
        raw.settimeout(HANDSHAKE_TIMEOUT)
        conn = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=True)
        return conn, address


def listening_socket(config: Config) -> socket.socket:
    """The API's listening socket, TLS-wrapped when the configuration asks for TLS."""
    address = config.get("api.listen_address")
    port = config.get("api.listen_port")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)  # the floating address comes later
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"api: cannot listen on {address}:{port}: {exc.strerror}") from None
    sock.listen(128)
    tls = config.get("api.tls")
    if not tls["enabled"]:
        return sock
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslsocket_class = _TlsListener
    try:
        context.load_cert_chain(tls["cert_file"], tls["key_file"])
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise ConfigError(f"api.tls: cannot load the certificate or key: {exc}") from None
    return context.wrap_socket(sock, server_side=True)


def url_scheme(config: Config) -> str:
    return "https" if config.get("api.tls.enabled") else "http"


def serve(config: Config) -> int:
    """Connects to Zookeeper, upgrades an old schema, and serves until SIGTERM or SIGINT.

    It listens before the cluster tree is in memory: until the mirror has loaded, requests
    are answered from Zookeeper itself (pvc.zk.cache), so none is refused or answered wrong."""
    import waitress

    from pvc.api.app import Context, make_app
    from pvc.zk import handler, migrations

    zk = handler.connect(config)
    migrations.upgrade(zk)
    sock = listening_socket(config)
    app = make_app(Context(zk, config))
    if not config.get("api.authentication.enabled"):
        log.warning("API authentication is DISABLED: anyone who reaches the port has full control")
    scheme = url_scheme(config)
    address, port = sock.getsockname()[:2]
    log.info("API serving on %s://%s:%s/api/v1", scheme, address, port)

    def stop(*_: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not re-enter
        log.info("API stopping")
        zk.close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    waitress.serve(
        app, sockets=[sock], url_scheme=scheme, threads=THREADS, ident="pvc", _quiet=True
    )
    return 0
