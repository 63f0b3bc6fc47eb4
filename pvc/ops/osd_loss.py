"""Which pools an OSD's removal would leave unable to keep `min_size` copies.

Removing an OSD drains it first (out, then its placement groups move), so what matters is not
whether it may stop now (`osd ok-to-stop` says no for every PG with one copy, which draining
moves) but whether the OSDs left can still hold `min_size` copies of each pool: per pool, the
failure domains (the type its CRUSH rule chooses: osd, host, rack ...) under the rule's root
that still have an OSD up and in, once this one is gone. Fewer than `min_size` there, and the
pool would stop serving I/O (or, with one copy, lose data): the removal is refused, naming the
pools. Device classes in a rule's root ("default~ssd") are read as the root itself.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shortfall:
    pool: str
    min_size: int
    left: int  # failure domains with a usable OSD after the removal
    domain: str  # their type

    def __str__(self) -> str:
        return f"{self.pool} (min_size {self.min_size}, {self.left} {self.domain}(s) left)"


def shortfalls(
    osd_id: int, pools: list[dict[str, Any]], rules: list[dict[str, Any]], tree: dict[str, Any]
) -> list[Shortfall]:
    """The pools (`osd pool ls detail`) whose rule (`osd crush rule dump`) could place fewer
    than min_size copies on the OSDs of the tree (`osd tree`) once `osd_id` is gone."""
    nodes = {node["id"]: node for node in tree.get("nodes", [])}
    by_name = {node["name"]: node for node in nodes.values()}
    rules_by_id = {rule["rule_id"]: rule for rule in rules}
    found = []
    for pool in pools:
        rule = rules_by_id.get(pool.get("crush_rule"))
        if rule is None:
            continue
        root_name, domain = _root_and_domain(rule)
        root = by_name.get(root_name)
        if root is None or osd_id not in _osds_under(root, nodes):
            continue
        left = _usable_domains(root, nodes, domain, osd_id)
        if left < pool["min_size"]:
            found.append(Shortfall(pool["pool_name"], pool["min_size"], left, domain))
    return found


def _root_and_domain(rule: dict[str, Any]) -> tuple[str, str]:
    root, domain = "default", "osd"
    for step in rule.get("steps", []):
        if step.get("op") == "take":
            root = str(step.get("item_name", root)).split("~", 1)[0]
        elif str(step.get("op", "")).startswith("choose"):
            domain = step.get("type", domain)
            break
    return root, domain


def _osds_under(node: dict[str, Any], nodes: dict[int, dict[str, Any]]) -> list[int]:
    if node.get("type") == "osd":
        return [node["id"]]
    found = []
    for child in node.get("children", []):
        if child in nodes:
            found += _osds_under(nodes[child], nodes)
    return found


def _usable(node: dict[str, Any], removed: int) -> bool:
    return node["id"] != removed and node.get("status") == "up" and node.get("reweight", 0) > 0


def _usable_domains(
    root: dict[str, Any], nodes: dict[int, dict[str, Any]], domain: str, removed: int
) -> int:
    """How many buckets of type `domain` under `root` hold a usable OSD (OSDs themselves for
    the domain osd)."""
    if domain == "osd":
        return sum(_usable(nodes[i], removed) for i in _osds_under(root, nodes))
    count = 0
    pending = [root]
    while pending:
        node = pending.pop()
        if node.get("type") == domain:
            count += any(_usable(nodes[i], removed) for i in _osds_under(node, nodes))
            continue
        pending += [nodes[c] for c in node.get("children", []) if c in nodes]
    return count
