"""pvc.ops.vm on a real Zookeeper: lists of VMs by node, state and name pattern."""

# the fixtures imported from test_vm_ops (nodes) are the tests' parameters
# ruff: noqa: F811

import json

import pytest

from pvc.errors import InvalidInput
from pvc.ops import vm
from tests.integration.test_vm_ops import define, nodes, set_state  # noqa: F401 (fixture)


def test_list_filters(nodes):
    for name, node in [("web1", "node1"), ("web2", "node2"), ("db1", "node1"), ("web10", "node3")]:
        define(nodes, name, node=node)
    set_state(nodes, "web2", "start")

    def names(**filters):
        return [record["name"] for record in vm.list_vms(nodes, **filters)]

    assert names() == ["db1", "web1", "web10", "web2"]
    assert names(node="node1") == ["db1", "web1"]
    assert names(state="start") == ["web2"]
    assert names(state="stop", node="node1") == ["db1", "web1"]
    assert names(node="ghost") == []


def test_a_name_pattern_is_a_glob_unless_regex_is_asked_for(nodes):
    """One rule: a shell glob matched against the whole name ('.' and every other character
    but * ? [ are literal); with regex, a regular expression searched in the name."""
    for name in ("web1", "web2", "db1", "web10", "web.1", "webx1"):
        define(nodes, name)

    def names(match, regex=False, **filters):
        listed = json.loads(vm.list_matching_json(nodes, match=match, regex=regex, **filters))
        return [r["name"] for r in listed]

    assert names("web?") == ["web1", "web2"]
    assert names("web[12]*") == ["web1", "web10", "web2"]
    assert names("web.1") == ["web.1"]  # not webx1: '.' is a dot
    assert names("web[.]1") == ["web.1"]
    assert names("web[!.]1") == ["webx1"]
    assert names("eb") == [] and names("1$") == []  # a glob matches the whole name
    assert names("web1") == ["web1"]
    assert names("web1", node="node2") == []
    assert names("1$", regex=True) == ["db1", "web.1", "web1", "webx1"]
    assert names("eb", regex=True) == ["web.1", "web1", "web10", "web2", "webx1"]
    assert names(r"^web\.", regex=True) == ["web.1"]
    assert names(None) == names(None, regex=False) == [r["name"] for r in vm.list_vms(nodes)]
    for bad in ("web(", "[a", "*"):
        with pytest.raises(InvalidInput, match="invalid regular expression '.*': "):
            names(bad, regex=True)
    assert names(None, regex=True) == names(None)  # no pattern: regex is ignored
