"""A request's parameters as given: the query string, and a body where the endpoint takes one.

Read from the WSGI environ itself rather than through bottle, which decodes query strings and
forms as Latin-1 (so "é" arrived as "Ã©") and drops undecodable bytes from paths ("a%FF" was
"a"). Here every byte must be UTF-8 (else 400), a parameter given twice is refused (which one
would count?), and only an endpoint that takes parameters in a body (POST and PUT with
parameters) reads one: any other refuses a non-empty body unread, since nothing in it counts.
A body is a JSON object nested at most limits.JSON_DEPTH_MAX deep, or a URL-encoded form.
"""

import json
from typing import Any
from urllib.parse import parse_qsl

from pvc import limits
from pvc.api.params import Text
from pvc.errors import InvalidInput, PvcError

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BODY_TYPES = (JSON, FORM)
OCTETS = "application/octet-stream"
MAX_FIELDS = 100  # parameters in one query string or form (no endpoint has more than 10)
_TOO_DEEP = f"the request body nests deeper than {limits.JSON_DEPTH_MAX} levels"


class BodyTooLarge(PvcError):
    http_status = 413


class UnsupportedBody(PvcError):
    http_status = 415


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"the {what} is not valid UTF-8") from None


def path(environ: dict[str, Any]) -> str:
    """The request's path as sent (percent-escapes decoded), refused unless UTF-8."""
    # PEP 3333: PATH_INFO carries the path's bytes as Latin-1 characters
    raw = environ.get("bottle.raw_path", environ.get("PATH_INFO", ""))
    return _utf8(raw.encode("latin-1"), "request path")


def _pairs(raw: bytes, what: str) -> dict[str, Text]:
    try:
        pairs = parse_qsl(
            _utf8(raw, what),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidInput(f"the {what} is not valid UTF-8 (after percent-decoding)") from None
    except ValueError:
        raise InvalidInput(f"the {what} has more than {MAX_FIELDS} parameters") from None
    values: dict[str, Text] = {}
    for name, value in pairs:
        if name in values:
            raise InvalidInput(f"parameter {name[:80]!r} is given more than once")
        values[name] = Text(value)
    return values


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_FIELDS:  # no endpoint takes that many: a form has the same bound
        raise InvalidInput(f"a JSON object in the request body has more than {MAX_FIELDS} members")
    document = dict(pairs)
    if len(document) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for name in names if names.count(name) > 1)
        raise InvalidInput(f"parameter {twice[:80]!r} is given more than once")
    return document


def _depth(value: Any) -> int:
    """How deep JSON containers nest in `value` (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")  # json.loads takes NaN and Infinity otherwise


def _json_object(raw: bytes) -> dict[str, Any]:
    text = _utf8(raw, "request body")
    if not text.strip():
        return {}
    try:
        document = json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_not_json)
    except RecursionError:  # deeper than the interpreter's stack: far beyond the limit
        raise InvalidInput(_TOO_DEEP) from None
    except ValueError:  # also integers of more than 4,300 digits
        raise InvalidInput("the request body is not valid JSON") from None
    if _depth(document) > limits.JSON_DEPTH_MAX:
        raise InvalidInput(_TOO_DEEP)
    if not isinstance(document, dict):
        raise InvalidInput("the request body must be a JSON object")
    return document


def _length(environ: dict[str, Any]) -> int:
    """The body's length (waitress sets it for chunked bodies too, once it has them)."""
    try:
        return max(0, int(environ.get("CONTENT_LENGTH") or 0))
    except ValueError:
        raise InvalidInput("the Content-Length header is not a number") from None


def _media_type(environ: dict[str, Any]) -> str:
    return environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()


def values(environ: dict[str, Any], takes_body: bool, octets: bool = False) -> dict[str, Any]:
    """The request's parameters by name: Text from the query string or a form, JSON values
    from a JSON body. A name given both in the query string and the body is refused. With
    `octets` the body is data (see `octets`), not parameters."""
    query = _pairs(environ.get("QUERY_STRING", "").encode("latin-1"), "query string")
    length = _length(environ)
    if octets:
        return query
    if not takes_body:
        if length:
            raise InvalidInput(
                "this endpoint takes no request body: give its parameters in the query string"
            )
        return query
    media_type = _media_type(environ)
    raw = _body(environ, length, media_type in BODY_TYPES, " or ".join(BODY_TYPES))
    body = _json_object(raw) if media_type == JSON else _pairs(raw, "form")
    both = sorted(set(query) & set(body))
    if both:
        raise InvalidInput(f"parameter {both[0][:80]!r} is given more than once")
    return {**query, **body}


def octets(environ: dict[str, Any]) -> bytes:
    """The body of an endpoint that takes bytes: application/octet-stream, not encoded, at
    most limits.BODY_MAX bytes (waitress holds no more)."""
    length = _length(environ)
    return _body(environ, length, _media_type(environ) == OCTETS, OCTETS)


def _body(environ: dict[str, Any], length: int, typed_right: bool, wanted: str) -> bytes:
    """The raw body of `length` bytes, refused unread when it is not of the `wanted` type
    (`typed_right` says whether it is), is encoded, or is over limits.BODY_MAX bytes."""
    if length and not typed_right:
        raise UnsupportedBody(f"the request body must be {wanted}")
    encoding = environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
    if length and encoding not in ("", "identity"):
        raise UnsupportedBody(
            f"the request body must not be encoded (Content-Encoding: {encoding[:40]})"
        )
    if length > limits.BODY_MAX:
        raise BodyTooLarge(f"the request body is larger than {limits.BODY_MAX} bytes")
    return environ["wsgi.input"].read(length) if length else b""
