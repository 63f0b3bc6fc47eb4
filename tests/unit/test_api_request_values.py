"""Reading a request's parameters (pvc.api.request_values) from WSGI environs as waitress
builds them: strict UTF-8, no duplicates, bounded JSON, bodies only where one is taken."""

import io
import json
import re

import pytest

from pvc import limits
from pvc.api import request_values
from pvc.api.params import Text
from pvc.errors import InvalidInput


def environ(query: bytes = b"", body: bytes = b"", content_type: str = "", path: bytes = b"/"):
    """As PEP 3333 has it: the path and query string as Latin-1 characters of their bytes."""
    return {
        "PATH_INFO": path.decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }


def test_query_form_and_json_values():
    values = request_values.values(environ(b"a=%C3%A9&b=&c"), takes_body=False)
    assert values == {"a": "é", "b": "", "c": ""}
    assert all(isinstance(value, Text) for value in values.values())
    form = environ(b"a=1", b"b=%C3%A9+x", request_values.FORM)
    assert request_values.values(form, takes_body=True) == {"a": "1", "b": "é x"}
    body = json.dumps({"b": True, "n": 2}).encode()
    values = request_values.values(environ(b"a=1", body, "application/json; charset=utf-8"), True)
    assert values == {"a": "1", "b": True, "n": 2} and not isinstance(values["b"], Text)


def test_a_path_must_be_utf8():
    assert request_values.path(environ(path="/vm/é".encode())) == "/vm/é"
    with pytest.raises(InvalidInput, match="path is not valid UTF-8"):
        request_values.path(environ(path=b"/vm/a\xff\xfe"))


DEEP = ("[" * 1000 + "]" * 1000).encode()


@pytest.mark.parametrize(
    "query, body, content_type, message",
    [
        (b"a=%FF", b"", "", "query string is not valid UTF-8"),
        (b"a=1&a=2", b"", "", "'a' is given more than once"),
        (b"a=1", b'{"a": 2}', "application/json", "'a' is given more than once"),
        (b"", b'{"a": 1, "a": 2}', "application/json", "'a' is given more than once"),
        (b"", b"a=%FF", request_values.FORM, "form is not valid UTF-8"),
        (b"", b"a=\xff", request_values.FORM, "form is not valid UTF-8"),
        (b"", b'{"a": "\xff"}', "application/json", "request body is not valid UTF-8"),
        (b"", b"{not json", "application/json", "not valid JSON"),
        (b"", b'{"a": NaN}', "application/json", "not valid JSON"),
        (b"", b'{"a": -Infinity}', "application/json", "not valid JSON"),
        (b"", b'{"a": 1' + b"0" * 5000 + b"}", "application/json", "not valid JSON"),
        (b"", b"[1, 2]", "application/json", "must be a JSON object"),
        (b"", b"null", "application/json", "must be a JSON object"),
        (b"", b'{"a":' + DEEP + b"}", "application/json", "nests deeper than 32 levels"),
        (b"", b'{"a":' + b"[" * 32 + b"]" * 32 + b"}", "application/json", "nests deeper"),
        (b"&".join(b"p%d=1" % n for n in range(101)), b"", "", "more than 100 parameters"),
    ],
)
def test_bad_requests_are_400(query, body, content_type, message):
    with pytest.raises(InvalidInput, match=re.escape(message)):
        request_values.values(environ(query, body, content_type), takes_body=True)


def test_thirty_two_levels_are_accepted():
    nested: list = []
    for _ in range(limits.JSON_DEPTH_MAX - 2):
        nested = [nested]  # the object and 31 lists: 32 levels
    body = json.dumps({"a": nested}).encode()
    assert request_values.values(environ(b"", body, "application/json"), True) == {"a": nested}


def test_a_body_where_none_is_taken_is_refused_unread():
    request = environ(b"", b'{"a": 1}', "application/json")
    with pytest.raises(InvalidInput, match="takes no request body"):
        request_values.values(request, takes_body=False)
    assert request["wsgi.input"].tell() == 0


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x", ""])
def test_other_body_types_are_415(content_type):
    with pytest.raises(request_values.UnsupportedBody) as caught:
        request_values.values(environ(b"", b"a=1", content_type), takes_body=True)
    assert caught.value.http_status == 415


def test_a_body_over_the_limit_is_413_unread():
    request = environ(b"", b"{}", "application/json")
    request["CONTENT_LENGTH"] = str(limits.BODY_MAX + 1)
    with pytest.raises(request_values.BodyTooLarge) as caught:
        request_values.values(request, takes_body=True)
    assert caught.value.http_status == 413
    assert request["wsgi.input"].tell() == 0


def test_an_encoded_body_is_415_unread():
    request = environ(b"", b"\x1f\x8b...", "application/json")
    request["HTTP_CONTENT_ENCODING"] = "gzip"
    with pytest.raises(request_values.UnsupportedBody, match="must not be encoded") as caught:
        request_values.values(request, takes_body=True)
    assert caught.value.http_status == 415 and request["wsgi.input"].tell() == 0
    request = environ(b"", b'{"a": 1}', "application/json")
    request["HTTP_CONTENT_ENCODING"] = "identity"
    assert request_values.values(request, takes_body=True) == {"a": 1}


def test_a_json_object_of_more_members_than_any_endpoint_takes_is_refused():
    members = {f"k{index}": index for index in range(request_values.MAX_FIELDS + 1)}
    body = json.dumps({"a": members}).encode()
    with pytest.raises(InvalidInput, match="has more than 100 members"):
        request_values.values(environ(b"", body, "application/json"), takes_body=True)
