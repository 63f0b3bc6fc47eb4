"""API parameters (pvc.api.params): types read strictly from text and JSON, required, unknown,
choices, lengths, patterns, ranges; the name pattern agrees with the schema's name rule."""

import re

import pytest

from pvc import limits
from pvc.api.params import (
    NAME_DOC,
    NAME_PATTERN,
    Param,
    Text,
    name_list_length,
    name_list_param,
    name_list_pattern,
    name_param,
    parse_params,
)
from pvc.errors import InvalidInput
from pvc.zk import schema

PARAMS = (
    Param("flag", bool, required=True),
    Param("count", int, default=3, minimum=1, maximum=10),
    Param("mode", str, choices=("a", "b"), default="a"),
    Param("seconds", float, minimum=0, exclusive_minimum=True, maximum=60),
    Param("name", str, max_length=limits.NAME_MAX, pattern=NAME_PATTERN),
    Param("xml", str, max_bytes=8),
)


def test_text_and_json_values_and_defaults():
    parsed = parse_params(PARAMS, {"flag": Text("yes")})
    assert parsed == {
        "flag": True,
        "count": 3,
        "mode": "a",
        "seconds": None,
        "name": None,
        "xml": None,
    }
    parsed = parse_params(PARAMS, {"flag": False, "count": Text("7"), "seconds": Text("1e-05")})
    assert parsed["count"] == 7 and parsed["seconds"] == 1e-05
    assert parse_params(PARAMS, {"flag": True, "count": 7.0, "seconds": 60})["count"] == 7
    assert parse_params(PARAMS, {"flag": Text("True"), "name": Text("vm-1.a_b")})["flag"] is True


@pytest.mark.parametrize(
    "values, message",
    [
        ({}, "'flag' is required"),
        ({"flag": Text("maybe")}, "must be true or false"),
        ({"flag": "true"}, "must be true or false"),  # a JSON string is not a boolean
        ({"flag": 1}, "must be true or false"),
        ({"flag": True, "count": Text("many")}, "'count' must be an integer"),
        ({"flag": True, "count": True}, "'count' must be an integer"),
        ({"flag": True, "count": "7"}, "'count' must be an integer"),
        ({"flag": True, "count": 7.5}, "'count' must be an integer"),
        ({"flag": True, "count": Text("1_0")}, "'count' must be an integer"),
        ({"flag": True, "count": Text(" 5")}, "'count' must be an integer"),
        ({"flag": True, "count": Text("٣")}, "'count' must be an integer"),
        ({"flag": True, "count": Text("-Infinity")}, "'count' must be an integer"),
        ({"flag": True, "count": Text("1e400")}, "'count' must be an integer"),
        ({"flag": True, "count": Text("9" * 30)}, "'count' must be an integer"),
        ({"flag": True, "count": 0}, "'count' must be at least 1 and at most 10"),
        ({"flag": True, "count": 10**400}, "'count' must be at least 1 and at most 10"),
        ({"flag": True, "seconds": Text("NaN")}, "'seconds' must be a number"),
        ({"flag": True, "seconds": Text("inf")}, "'seconds' must be a number"),
        ({"flag": True, "seconds": Text("1e400")}, "'seconds' must be a finite number"),
        ({"flag": True, "seconds": float("nan")}, "'seconds' must be a finite number"),
        ({"flag": True, "seconds": 10**400}, "'seconds' must be a finite number"),
        ({"flag": True, "seconds": 0}, "'seconds' must be more than 0 and at most 60"),
        ({"flag": True, "seconds": 60.5}, "'seconds' must be more than 0 and at most 60"),
        ({"flag": True, "mode": "c"}, "'mode' must be one of a, b"),
        ({"flag": True, "mode": 5}, "'mode' must be a string"),
        ({"flag": True, "mode": "\ud800"}, "'mode' is not valid Unicode text"),
        ({"flag": True, "name": "a" * 64}, "'name' is longer than 63 characters"),
        ({"flag": True, "name": "-a"}, "invalid name '-a': it must match ^(?!"),
        ({"flag": True, "name": "a\n"}, "invalid name 'a\\n'"),
        ({"flag": True, "name": "a\x01b"}, "invalid name 'a\\x01b'"),
        ({"flag": True, "xml": "ééééé"}, "'xml' is larger than 8 bytes"),
        ({"flag": True, "extra": 1}, "unknown parameter 'extra'"),
        ({"flag": True, "\ud800": 1}, "unknown parameter"),
    ],
)
def test_bad_values(values, message):
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_params(PARAMS, values)


@pytest.mark.parametrize(
    "name",
    ["a", "A9", "node1", "vm-1.a_b", "a" * 63, "a" * 64, "-a", ".a", "", "a b", "é", "a\n", "a/b",
     "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d001", "0b6b2f34" * 4, "0b6b2f34" * 4 + "1"],
)  # fmt: skip
def test_name_pattern_agrees_with_the_schema(name):
    """The documented pattern accepts exactly what the schema's name rule and NAME_MAX do."""
    documented = re.fullmatch(NAME_PATTERN, name) is not None
    assert documented == (schema.valid_name(name) and len(name) <= limits.NAME_MAX)


@pytest.mark.parametrize(
    "text, accepted",
    [
        ("", True),
        ("node1", True),
        ("node1,node2", True),
        (" node1 , node2 ", True),
        ("node1,", True),
        ("node1,,node2", True),
        (" , ", True),
        ("node 1", False),
        ("-node", False),
        (",".join(["n"] * 3), True),
        (",".join(["n"] * 4), False),
        ("n,0b6b2f34-7c55-4f43-9a0e-2f6a43f1d001", False),
        ("0b6b2f347c554f439a0e2f6a43f1d001 ,n", False),
    ],
)
def test_name_lists(text, accepted):
    assert (re.fullmatch(name_list_pattern(3), text) is not None) == accepted


def test_name_params_say_what_is_wrong_in_words():
    node = name_param("node", "The node", "node name")
    with pytest.raises(InvalidInput) as caught:
        parse_params((node,), {"node": Text("a b")})
    assert caught.value.message == f"invalid node name 'a b': {NAME_DOC}"
    tags = name_list_param("tags", "Tags", "tags", 2)
    with pytest.raises(InvalidInput, match=r"invalid tags 'a,b,c': comma-separated names"):
        parse_params((tags,), {"tags": "a,b,c"})
    assert parse_params((tags,), {"tags": "a, b"}) == {"tags": "a, b"}


def test_name_list_length_fits_the_longest_list():
    longest = ",".join(["a" * limits.NAME_MAX] * 3)
    assert len(longest) == name_list_length(3)
    assert re.fullmatch(name_list_pattern(3), longest)


def test_tag_lists_take_uuid_forms():
    assert re.fullmatch(name_list_pattern(3, names=False), "0b6b2f347c554f439a0e2f6a43f1d001,a")


HOSTILE = [
    ",".join(["   "] * 63) + ",!",
    ",".join(["a  "] * 63) + ",!",
    ",".join(["0" * 31 + "  "] * 63) + ",!",
    " " * 4000 + "!",
    ",".join(["a" * 63] * 64) + "!",
    "a" * 4000 + "!",
    "0-" * 2000 + "!",
]


@pytest.mark.timeout(20)
def test_every_documented_pattern_matches_hostile_text_at_once():
    """Each endpoint's patterns are checked with Python's re on what anyone sends: a pattern
    with two ways to match a text would take exponential time on some text (a list of
    space-only items took minutes before). Bounded by the test's timeout, far above the
    milliseconds this takes."""
    from pvc.api import app, routes

    routes.load()
    patterns = {param.pattern for ep in app.ENDPOINTS for param in ep.params if param.pattern}
    patterns |= {name_list_pattern(limits.NODE_LIMIT_MAX), name_list_pattern(64, names=False)}
    assert len(patterns) >= 3
    for pattern in patterns:
        compiled = re.compile(pattern)
        for text in HOSTILE:
            assert compiled.fullmatch(text) is None
