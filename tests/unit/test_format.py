"""Output formats: JSON, indented sorted JSON, aligned tables and key-value blocks."""

import json

import pytest

from pvc.cli.format import check_format, key_values, render, table
from pvc.errors import UsageError

DATA = {"b": 1, "a": [True, None]}


def test_json_is_compact_and_keeps_order():
    text = render(DATA, "json", pretty=lambda _: "unused")
    assert text == '{"b": 1, "a": [true, null]}'


def test_json_pretty_indents_two_and_sorts_keys():
    text = render(DATA, "json-pretty", pretty=lambda _: "unused")
    assert text.splitlines()[:2] == ["{", '  "a": [']
    assert json.loads(text) == DATA


def test_pretty_uses_the_given_renderer():
    assert render(DATA, "pretty", pretty=lambda data: f"{len(data)} keys") == "2 keys"


@pytest.mark.parametrize("name", ["xml", "", "JSON"])
def test_unknown_format_is_usage_error(name):
    with pytest.raises(UsageError, match="pretty, json, json-pretty") as caught:
        render(DATA, name, pretty=str)
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError):
        check_format(name)


def test_table_aligns_columns_and_renders_none_and_booleans():
    text = table(("NAME", "PORT", "KEY"), [["prod", 7370, True], ["a-long-name", None, False]])
    assert text.splitlines() == [
        "NAME         PORT  KEY",
        "prod         7370  yes",
        "a-long-name  -     no",
    ]


def test_table_without_rows_is_the_header():
    assert table(("NAME", "PORT"), []) == "NAME  PORT"


def test_key_values_align_values():
    text = key_values([("cluster", "pvc"), ("primary node", None), ("maintenance", False)])
    assert text.splitlines() == [
        "cluster:       pvc",
        "primary node:  -",
        "maintenance:   no",
    ]
