"""`pvc api serve`: the API application under waitress, over HTTP or TLS.

Waitress has no TLS of its own; we hand it a listening socket wrapped by Python's `ssl`, whose
`accept()` wraps each connection without a handshake: the connection's channel handshakes
without blocking (pvc.api.channels), so a client that stalls its handshake delays nobody else.
What else keeps misbehaving clients from the others is in pvc.api.http_server.
"""

import logging
import signal
import socket
import ssl
import sys
from typing import TYPE_CHECKING, Any

from pvc.config import Config
from pvc.errors import ConfigError

IP_FREEBIND = 15  # linux/in.h (Python's socket module lacks it): bind an address not yet here

if TYPE_CHECKING:
    from pvc.api.http_server import GuardedServer

# waitress worker threads: requests served at once (a waiting request holds one).
THREADS = 48  # pvc.api.waits: at most 40 of them wait, 8 are always free
log = logging.getLogger("pvc.api")


class _TlsListener(ssl.SSLSocket):
    """A listening TLS socket whose accepted connections are not yet handshaken."""

    def accept(self) -> tuple[ssl.SSLSocket, Any]:
        raw, address = socket.socket.accept(self)
        raw.setblocking(False)
        conn = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
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
    context.options |= ssl.OP_NO_RENEGOTIATION  # a handshake happens once, at the start
    context.sslsocket_class = _TlsListener
    try:
        context.load_cert_chain(tls["cert_file"], tls["key_file"])
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise ConfigError(f"api.tls: cannot load the certificate or key: {exc}") from None
    return context.wrap_socket(sock, server_side=True)


def url_scheme(config: Config) -> str:
    return "https" if config.get("api.tls.enabled") else "http"


def api_server(app: Any, sock: socket.socket, config: Config) -> "GuardedServer":
    """The server of the API application `app` on the listening socket `sock`; `.run()`
    serves until the process ends."""
    from pvc.api.app import ENDPOINTS, PREFIX
    from pvc.api.auth import KeyCheck
    from pvc.api.http_server import make_server

    public = frozenset(
        [(ep.method, PREFIX + ep.path) for ep in ENDPOINTS if ep.public]
        + [("GET", PREFIX + "/openapi.json")]
    )
    keys = KeyCheck.from_config(config)
    return make_server(app, sock, url_scheme(config), THREADS, keys, public)


def serve(config: Config) -> int:
    """Connects to Zookeeper, upgrades an old schema, and serves until SIGTERM or SIGINT.

    It listens before the cluster tree is in memory: until the mirror has loaded, requests
    are answered from Zookeeper itself (pvc.zk.cache), so none is refused or answered wrong."""
    from pvc.api.app import Context, make_app
    from pvc.config import require_api_keys
    from pvc.zk import handler, migrations

    require_api_keys(config.get("api.authentication"))
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
    api_server(app, sock, config).run()
    return 0
