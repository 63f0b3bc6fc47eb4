"""pvc.api.http_errors: one readable line for each of waitress's own errors."""

from waitress.utilities import (
    BadRequest,
    InternalServerError,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
    ServerNotImplemented,
)

from pvc import limits
from pvc.api.http_errors import KeyRequired, error_message


def test_messages():
    assert error_message(RequestEntityTooLarge("exceeds max_body of 2097153")) == (
        f"the request body is larger than {limits.BODY_MAX} bytes"
    )
    assert error_message(RequestHeaderFieldsTooLarge("exceeds max_header")) == (
        f"the request headers are larger than {limits.HEADER_MAX} bytes"
    )
    assert error_message(KeyRequired("an API key is required (header X-Api-Key)")) == (
        "an API key is required (header X-Api-Key)"
    )
    assert error_message(InternalServerError("Traceback ...")) == (
        "internal error; see the API log"
    )
    assert error_message(BadRequest("Content-Length is\ninvalid")) == (
        "bad request: Content-Length is invalid"
    )
    assert error_message(ServerNotImplemented("Transfer-Encoding requested is not supported.")) == (
        "not implemented: Transfer-Encoding requested is not supported."
    )
