"""The text users give that pvc stores (names, tags, node limits), checked against pvc.limits
before anything is read or written, and quoted in a refusal without echoing all of it.

Every value ends up in one Zookeeper transaction, which Zookeeper refuses by dropping the
session's connection when it passes 1 MiB: these checks keep each value well below that and
answer a clear 400 (InvalidInput) naming the limit instead.
"""

from typing import Any

from pvc import limits
from pvc.errors import InvalidInput
from pvc.zk import schema

QUOTED_MAX = 40  # characters of a user's text quoted back in a refusal
TAG_RULE = (
    f"a tag is 1 to {limits.TAG_MAX} letters, digits, '.', '-' and '_', starting with a letter "
    "or digit"
)


def quoted(value: Any) -> str:
    """`value` for a refusal: its repr on one line, cut to QUOTED_MAX characters."""
    return limits.one_line(repr(value), QUOTED_MAX)


def require_name(value: Any, what: str) -> str:
    """`value` if it follows the name rule (pvc.zk.schema.NAME_RULE); InvalidInput otherwise."""
    if not schema.valid_name(value):
        raise InvalidInput(f"invalid {what} {quoted(value)}: {schema.NAME_RULE}")
    return value


def require_tags(tags: list[Any]) -> list[str]:
    """`tags` if each follows TAG_RULE and there are at most TAGS_MAX different ones."""
    for tag in tags:
        if not _valid_tag(tag):
            raise InvalidInput(f"invalid tag {quoted(tag)}: {TAG_RULE}")
    if len(set(tags)) > limits.TAGS_MAX:
        raise InvalidInput(f"a VM has at most {limits.TAGS_MAX} tags ({len(set(tags))} given)")
    return tags


def _valid_tag(tag: Any) -> bool:
    return schema.valid_component(tag) and len(tag) <= limits.TAG_MAX


def require_node_limit(names: list[Any]) -> list[str]:
    """`names` (a VM's node limit), each once, if each is a node name and there are at most
    NODE_LIMIT_MAX."""
    if len(names) > limits.NODE_LIMIT_MAX:
        raise InvalidInput(
            f"a node limit names at most {limits.NODE_LIMIT_MAX} nodes ({len(names)} given)"
        )
    for name in names:
        require_name(name, "node name in the node limit")
    return list(dict.fromkeys(names))  # each node once, in the order given
