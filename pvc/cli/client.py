"""A small HTTP client of the REST API on the standard library.

Parameters go as a JSON body for POST and PUT, as a query string for GET and DELETE. An error
answer `{"message": ...}` is raised as the PvcError matching its status, carrying the API's
message; an API that cannot be reached is Unavailable.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from typing import TYPE_CHECKING, Any

from pvc.cli import connections
from pvc.cli.connections import Connection
from pvc.errors import Conflict, InvalidInput, NotFound, PvcError, Unauthorized, Unavailable
from pvc.limits import one_line

if TYPE_CHECKING:
    from pvc.__main__ import Globals

DEFAULT_TIMEOUT = 10.0
ERRORS_BY_STATUS: dict[int, type[PvcError]] = {
    400: InvalidInput,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    503: Unavailable,
}


class ApiClient:
    """Requests to one connection's API; every answer is decoded JSON."""

    def __init__(
        self,
        connection: Connection,
        *,
        insecure: bool = False,
        connect_timeout: float = DEFAULT_TIMEOUT,
        read_timeout: float = DEFAULT_TIMEOUT,
    ):
        self.connection = connection
        self.insecure = insecure
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params)

    def post(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, params)

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
    ) -> Any:
        """Sends one request below /api/v1 and returns the decoded JSON answer; `data` is
        sent as an application/octet-stream body (the parameters then go in the query)."""
        url = self.connection.url + path
        target = urllib.parse.urlsplit(url).path
        headers = {"Accept": "application/json"}
        if self.connection.api_key:
            headers["X-Api-Key"] = self.connection.api_key
        params = {name: value for name, value in (params or {}).items() if value is not None}
        body = None
        if data is not None:
            body = data
            headers["Content-Type"] = "application/octet-stream"
        elif method in ("POST", "PUT") and params:  # none: no body (an endpoint
            # without parameters refuses one, even "{}")
            body = json.dumps(params).encode()
            headers["Content-Type"] = "application/json"
        if params and (data is not None or method not in ("POST", "PUT")):
            target += "?" + urllib.parse.urlencode(
                {name: _query_value(value) for name, value in params.items()}
            )
        conn = self._open()
        try:
            conn.connect()
            conn.sock.settimeout(self.read_timeout)
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Unavailable(f"cannot reach the API at {url}: {_reason(exc)}") from None
        finally:
            conn.close()
        return _decode(url, response.status, response.getheader("Content-Type"), raw)

    def _open(self) -> http.client.HTTPConnection:
        address, port = self.connection.address, self.connection.port
        if not self.connection.ssl:
            return http.client.HTTPConnection(address, port, timeout=self.connect_timeout)
        context = ssl.create_default_context()
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(
            address, port, timeout=self.connect_timeout, context=context
        )


def for_options(options: Globals) -> ApiClient:
    """A client of the connection the global options select (-c, $PVC_CONNECTION, local)."""
    connection = connections.resolve(options.connection, options.config)
    return ApiClient(connection, insecure=options.insecure)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{exc.verify_message} (use --insecure to skip certificate verification)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _decode(url: str, status: int, content_type: str | None, raw: bytes) -> Any:
    try:
        document = json.loads(raw)
    except ValueError:
        raise PvcError(
            f"the API at {url} answered HTTP {status} with {content_type or 'no content type'},"
            " not JSON; is this a pvc API?"
        ) from None
    message = document.get("message") if isinstance(document, dict) else None
    if isinstance(message, str):  # shown on one line of a terminal, however long
        message = document["message"] = one_line(message)
    if status < 400:
        return document
    error = ERRORS_BY_STATUS.get(status, PvcError)
    raise error(message or f"the API at {url} answered HTTP {status}")
