"""API parameter parsing: types, required, unknown and choices."""

import pytest

from pvc.api.app import Param, parse_params
from pvc.errors import InvalidInput

PARAMS = (
    Param("flag", bool, required=True),
    Param("count", int, default=3),
    Param("mode", str, choices=("a", "b"), default="a"),
)


def test_conversion_and_defaults():
    assert parse_params(PARAMS, {"flag": "yes"}) == {"flag": True, "count": 3, "mode": "a"}
    assert parse_params(PARAMS, {"flag": False, "count": "7", "mode": "b"})["count"] == 7


@pytest.mark.parametrize(
    "values, message",
    [
        ({}, "'flag' is required"),
        ({"flag": "maybe"}, "must be true or false"),
        ({"flag": True, "count": "many"}, "'count' must be a number"),
        ({"flag": True, "count": True}, "'count' must be a number"),
        ({"flag": True, "mode": "c"}, "'mode' must be one of a, b"),
        ({"flag": True, "mode": 5}, "'mode' must be a string"),
        ({"flag": True, "extra": 1}, "unknown parameter 'extra'"),
    ],
)
def test_bad_values(values, message):
    with pytest.raises(InvalidInput, match=message):
        parse_params(PARAMS, values)
