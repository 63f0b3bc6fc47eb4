"""Schema paths and value encoding."""

import pytest

from pvc import limits
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


UUID = "6a2f1e5c-7f5e-4f0b-9d62-0b4c6f1d2e3a"


@pytest.mark.parametrize(
    "name",
    ["vm1", "a", "a" * 63, "web.example.com", "db_1-2", UUID[:-1], UUID + "0", "g" + UUID[1:]],
)
def test_names_that_follow_the_rule(name):
    assert schema.valid_name(name)
    assert schema.as_uuid(name) is None


@pytest.mark.parametrize(
    "name", ["", "a" * 64, "x" * 1_100_000, "-a", ".a", "a/b", "a b", "é", "a\n", 3, None]
)
def test_names_off_the_rule(name):
    assert not schema.valid_name(name)


@pytest.mark.parametrize(
    "text", [UUID, UUID.upper(), UUID.replace("-", ""), "6a2f1e5c7f5e4f0b-9d62-0b4c6f1d-2e3a"]
)
def test_text_in_uuid_form_is_a_uuid_and_never_a_name(text):
    assert schema.as_uuid(text) == UUID
    assert not schema.valid_name(text)


def test_the_name_rule_states_the_limit():
    assert f"1 to {limits.NAME_MAX}" in schema.NAME_RULE


def test_uuids_and_long_ids_are_still_path_components():
    assert schema.path("domain", UUID) == f"/domains/{UUID}"
