"""Waitress's request parser, which refuses a body nobody may send before reading it.

Waitress reads a request's whole body before the application sees its headers, so without
this an unauthenticated client could make the API read (and spool to disk) up to the body
limit on every request. A request that carries a body (a Content-Length or a chunked
encoding) to an endpoint that needs a key, without a valid `X-Api-Key`, becomes a 401 as soon
as its headers are in, and its connection is closed unread (pvc.api.http_errors). Bodiless
requests go to the application, which checks keys as before (pvc.api.app).

A request already refused at its headers (a body over the limit, a key missing) is never
invited to send its body with `100 Continue`.
"""

from waitress.adjustments import Adjustments
from waitress.parser import HTTPRequestParser
from waitress.utilities import RequestEntityTooLarge

from pvc.api.auth import KeyCheck
from pvc.api.http_errors import KeyRequired
from pvc.errors import Unauthorized


class KeyCheckingParser(HTTPRequestParser):
    def __init__(
        self, adj: Adjustments, keys: KeyCheck, public: frozenset[tuple[str, str]]
    ) -> None:
        super().__init__(adj)
        self.keys = keys
        self.public = public  # (method, path) of the endpoints that need no key
        self.body_checked = False

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if self.headers_finished and not self.body_checked:
            self.body_checked = True
            if not self.completed:  # a body follows
                self._refuse_without_key()
            if self.error is not None:
                self.expect_continue = False
        self._refuse_a_chunk_over_the_limit()
        return consumed

    def _refuse_a_chunk_over_the_limit(self) -> None:
        """A chunk announced larger than the body limit is refused (413) when its size line
        arrives, not once the client has sent up to the limit, or never if it stalls."""
        if self.error is not None or self.completed or self.body_rcv is None:
            return
        announced = getattr(self.body_rcv, "chunk_remainder", 0) + self.body_bytes_received
        if announced > self.adj.max_request_body_size:
            self.error = RequestEntityTooLarge(
                f"exceeds max_body of {self.adj.max_request_body_size}"
            )
            self.completed = True

    def _refuse_without_key(self) -> None:
        if (self.command, self.path) in self.public:
            return
        try:
            self.keys.check(self.headers.get("X_API_KEY"))
        except Unauthorized as refusal:
            self.error = KeyRequired(refusal.message)
            self.completed = True
