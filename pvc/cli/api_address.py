"""What `pvc connection add --address` accepts: a host, host:port, or an http(s) URL of the
API, read into the host, port and scheme a connection stores.

A URL's scheme decides TLS; a port left out is pvc's (7370) even in a URL, since that is where
pvc's API listens; the only path allowed is the API's own, /api/v1. Anything else is a
UsageError naming the address, so a bad entry never reaches the connections file.
"""

import urllib.parse
from typing import NamedTuple

from pvc.config_values import host_port, valid_host
from pvc.errors import UsageError

API_PATHS = ("", "/", "/api/v1", "/api/v1/")
SCHEMES = {"http": False, "https": True}


class ApiAddress(NamedTuple):
    host: str
    port: int
    ssl: bool


def parse(text: str, port: int | None, ssl: bool, default_port: int) -> ApiAddress:
    """`text` (the --address) with the --port and --ssl given; they must agree with it."""
    if "://" in text:
        host, given_port, given_ssl = _url(text)
    else:
        (host, given_port), given_ssl = _host(text), None
    if given_ssl is not None and ssl and not given_ssl:
        raise UsageError(f"--ssl contradicts the address {text!r}: use https://")
    if given_port is not None and port is not None and given_port != port:
        raise UsageError(f"--port {port} contradicts the address {text!r}")
    return ApiAddress(host, port or given_port or default_port, ssl or bool(given_ssl))


def _invalid(text: str, why: str) -> UsageError:
    return UsageError(f"invalid address {text!r}: {why}; see 'pvc connection --help'")


def _host(text: str) -> tuple[str, int | None]:
    """A host, [v6], host:port or [v6]:port."""
    if not text:
        raise _invalid(text, "give a host name, an IP address or a URL")
    try:
        return host_port(text)
    except ValueError:
        raise _invalid(text, "not a host name or IP address with an optional :port") from None


def _url(text: str) -> tuple[str, int | None, bool]:
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        raise _invalid(text, "not a URL") from None
    if parts.scheme.lower() not in SCHEMES:
        raise _invalid(text, "the scheme must be http or https")
    if parts.username is not None or parts.query or parts.fragment:
        raise _invalid(text, "no user, query or fragment, please")
    if parts.path not in API_PATHS:
        raise _invalid(text, "the API's path is /api/v1 (or leave the path out)")
    try:
        port = parts.port
    except ValueError:
        raise _invalid(text, "the port must be a number from 1 to 65535") from None
    host = parts.hostname or ""
    if not valid_host(host) or port == 0:
        raise _invalid(text, "not a host name or IP address with an optional :port")
    return host, port, SCHEMES[parts.scheme.lower()]
