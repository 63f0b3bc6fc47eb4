"""pvc.api.request_parser: a body without a valid key is refused once the headers are in,
before any of it is read; other requests are left to waitress and the application."""

import pytest
from waitress.adjustments import Adjustments

from pvc.api.auth import KeyCheck
from pvc.api.http_errors import KeyRequired
from pvc.api.request_parser import KeyCheckingParser

KEYS = KeyCheck(True, (b"the-key",))
PUBLIC = frozenset({("GET", "/api/v1/")})


def parsed(*lines: str) -> KeyCheckingParser:
    parser = KeyCheckingParser(Adjustments(), KEYS, PUBLIC)
    parser.received(("\r\n".join(lines) + "\r\n\r\n").encode())
    return parser


@pytest.mark.parametrize("key", [None, "wrong"])
@pytest.mark.parametrize("framing", ["Content-Length: 1000", "Transfer-Encoding: chunked"])
def test_a_body_without_a_valid_key_is_refused_at_the_headers(key, framing):
    lines = ["POST /api/v1/vm HTTP/1.1", framing, "Expect: 100-continue"]
    parser = parsed(*lines, *([f"X-Api-Key: {key}"] if key else []))
    assert parser.completed and isinstance(parser.error, KeyRequired)
    assert not parser.expect_continue  # never invited to send it
    assert parser.body_bytes_received == 0


def test_a_body_with_the_key_is_read():
    parser = parsed("POST /api/v1/vm HTTP/1.1", "Content-Length: 1000", "X-Api-Key: the-key")
    assert not parser.completed and parser.error is None


def test_bodiless_requests_and_public_endpoints_are_left_to_the_application():
    assert parsed("GET /api/v1/vm HTTP/1.1").error is None  # the application answers 401
    public = parsed("GET /api/v1/ HTTP/1.1", "Content-Length: 10")
    assert not public.completed and public.error is None


def test_keys_are_not_checked_when_authentication_is_off():
    parser = KeyCheckingParser(Adjustments(), KeyCheck(False, ()), PUBLIC)
    parser.received(b"POST /api/v1/vm HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
    assert parser.error is None
