"""pvc.ops.osd_loss: which pools an OSD's removal leaves below min_size, read from the JSON
Ceph answers (osd pool ls detail, osd crush rule dump, osd tree) in the shapes Pacific gives."""

from pvc.ops.osd_loss import Shortfall, shortfalls


def osd(osd_id: int, up: bool = True, weight: float = 1.0) -> dict:
    return {"id": osd_id, "name": f"osd.{osd_id}", "type": "osd",
            "status": "up" if up else "down", "reweight": weight}  # fmt: skip


def bucket(bucket_id: int, name: str, kind: str, children: list[int]) -> dict:
    return {"id": bucket_id, "name": name, "type": kind, "children": children}


def rule(rule_id: int, domain: str, root: str = "default", op: str = "chooseleaf_firstn") -> dict:
    steps = [{"op": "take", "item": -1, "item_name": root},
             {"op": op, "num": 0, "type": domain}, {"op": "emit"}]  # fmt: skip
    return {"rule_id": rule_id, "rule_name": f"r{rule_id}", "steps": steps}


def pool(name: str, min_size: int, rule_id: int = 0) -> dict:
    return {
        "pool_name": name,
        "min_size": min_size,
        "size": max(min_size, 1),
        "crush_rule": rule_id,
    }


# two hosts: node1 holds osd.0 and osd.1, node2 holds osd.2
TREE = {
    "nodes": [
        bucket(-1, "default", "root", [-2, -3]),
        bucket(-2, "node1", "host", [0, 1]),
        bucket(-3, "node2", "host", [2]),
        osd(0), osd(1), osd(2),
    ]
}  # fmt: skip


def test_per_osd_rules_count_the_osds_left():
    rules = [rule(0, "osd", op="choose_firstn")]
    pools = [pool("one", 1), pool("three", 3), pool("two", 2)]
    assert shortfalls(2, pools, rules, TREE) == [Shortfall("three", 3, 2, "osd")]


def test_per_host_rules_count_hosts_with_a_usable_osd():
    rules = [rule(0, "host")]
    pools = [pool("two", 2), pool("one", 1)]
    assert shortfalls(0, pools, rules, TREE) == []  # node1 keeps osd.1
    assert shortfalls(2, pools, rules, TREE) == [Shortfall("two", 2, 1, "host")]


def test_osds_down_or_out_do_not_count():
    tree = {"nodes": [*TREE["nodes"][:3], osd(0), osd(1, up=False), osd(2, weight=0)]}
    rules = [rule(0, "osd")]
    assert shortfalls(1, [pool("one", 1)], rules, tree) == []
    assert shortfalls(0, [pool("one", 1)], rules, tree) == [Shortfall("one", 1, 0, "osd")]


def test_pools_of_another_root_or_device_class_root():
    tree = {"nodes": [*TREE["nodes"], bucket(-9, "fast", "root", [-8]),
                      bucket(-8, "node3", "host", [5]), osd(5)]}  # fmt: skip
    rules = [rule(0, "host"), rule(1, "host", root="fast"), rule(2, "osd", root="default~hdd")]
    pools = [pool("elsewhere", 1, 1), pool("classy", 3, 2)]
    assert shortfalls(2, pools, rules, tree) == [Shortfall("classy", 3, 2, "osd")]
    assert shortfalls(5, pools, rules, tree) == [Shortfall("elsewhere", 1, 0, "host")]


def test_the_message_names_the_pool_and_its_numbers():
    assert str(Shortfall("vms", 2, 1, "host")) == "vms (min_size 2, 1 host(s) left)"
