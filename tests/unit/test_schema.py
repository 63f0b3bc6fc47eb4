"""Schema paths and value encoding."""

import pytest

from pvc.zk import schema


def test_paths_fill_placeholders():
    assert schema.path("node.keepalive", "n1") == "/nodes/n1/keepalive"
    assert schema.path("node.keepalive", node="n2") == "/nodes/n2/keepalive"
    assert schema.path("base.config.primary_node") == "/config/primary_node"


@pytest.mark.parametrize("bad", ["", "a/b"])
def test_names_that_would_escape_their_folder_are_refused(bad):
    with pytest.raises(ValueError):
        schema.path("node", bad)


@pytest.mark.parametrize(
    "value, kind, raw",
    [
        (True, bool, b"true"),
        (False, bool, b"false"),
        (3, int, b"3"),
        (1.5, float, b"1.5"),
        ("x", str, b"x"),
        ({"b": 1, "a": [2]}, "json", b'{"a":[2],"b":1}'),
    ],
)
def test_values_round_trip(value, kind, raw):
    assert schema.encode(value, kind) == raw
    assert schema.decode(raw, kind) == value


def test_empty_reads_as_none():
    assert schema.encode(None, str) == b""
    assert schema.decode(b"", int) is None
    assert schema.decode(None, "json") is None


def test_every_initial_key_is_known_and_under_a_root():
    roots = {schema.KEYS[root][0] for root in schema.ROOTS}
    for key in schema.INITIAL_TREE:
        path = schema.KEYS[key][0]
        assert any(path == root or path.startswith(root + "/") for root in roots), key
