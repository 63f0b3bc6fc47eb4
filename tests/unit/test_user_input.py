"""The checks of user text pvc stores: names, tags and node limits against pvc.limits, and
refusals that quote the text on one short line."""

import pytest

from pvc import limits
from pvc.errors import InvalidInput
from pvc.ops import user_input


def test_quoted_is_one_short_line():
    assert user_input.quoted("vm1") == "'vm1'"
    long = user_input.quoted("a\nb" * 100_000)
    assert "\n" not in long and len(long) == user_input.QUOTED_MAX and long.endswith("…")


def test_a_name_off_the_rule_is_refused_with_the_limit():
    assert user_input.require_name("vm1", "VM name") == "vm1"
    with pytest.raises(InvalidInput, match=f"invalid VM name 'xxx.*1 to {limits.NAME_MAX} "):
        user_input.require_name("x" * 1_100_000, "VM name")


@pytest.mark.parametrize(
    "tags",
    [[], ["web"], ["prod-env", "owner.ops_1", "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d001"],
     ["t" * limits.TAG_MAX], ["a"] * 1000,
     [f"t{i}" for i in range(limits.TAGS_MAX)]],
)  # fmt: skip
def test_tags_within_the_limits(tags):
    assert user_input.require_tags(tags) == tags


@pytest.mark.parametrize(
    "tags, message",
    [
        ([""], "invalid tag ''"),
        (["t" * (limits.TAG_MAX + 1)], f"1 to {limits.TAG_MAX} letters, digits"),
        (["a,b"], "invalid tag 'a,b'"),
        ([" a"], "invalid tag ' a'"),
        (["prod env"], "invalid tag 'prod env'"),
        (["é"], "invalid tag 'é'"),
        (["a\nb"], r"invalid tag 'a\\nb'"),
        ([3], "invalid tag 3"),
        ([f"t{i}" for i in range(limits.TAGS_MAX + 1)], f"at most {limits.TAGS_MAX} tags"),
    ],
)
def test_tags_off_the_limits_are_refused(tags, message):
    with pytest.raises(InvalidInput, match=message):
        user_input.require_tags(tags)


def test_a_node_limit_names_few_valid_nodes():
    assert user_input.require_node_limit(["n1", "n2"]) == ["n1", "n2"]
    assert user_input.require_node_limit(["n2", "n1", "n2", "n2"]) == ["n2", "n1"]
    with pytest.raises(InvalidInput, match=f"at most {limits.NODE_LIMIT_MAX} nodes"):
        user_input.require_node_limit([f"n{i}" for i in range(limits.NODE_LIMIT_MAX + 1)])
    with pytest.raises(InvalidInput, match="invalid node name in the node limit 'a/b'"):
        user_input.require_node_limit(["n1", "a/b"])
