"""ACLs of a managed network: nft rules in its `in` or `out` chain, by description and order.

A rule is checked by pvc.ops.acl_rules (its own limits, then nft itself with the network's
other ACLs: a refusal quotes nft's words) before anything is locked or written; it is stored
with its order under `lock.networks` in one transaction that expects the network unchanged.
Without an order, an ACL goes after the last of its direction. The same description may name
one ACL in each direction; where that leaves a description ambiguous, the direction must be
given.
"""

from typing import Any

from pvc.errors import Conflict, InvalidInput, NotFound
from pvc.ops import acl_rules, network_records, user_input
from pvc.ops.network import networks_lock, require
from pvc.ops.network_records import DIRECTIONS, Acl, Network
from pvc.zk.store import Store

ORDER_MAX = 1_000_000


def _require_direction(direction: Any) -> str:
    if direction not in DIRECTIONS:
        raise InvalidInput(f"invalid direction {user_input.quoted(direction)}: in or out")
    return direction


def add(
    store: Store, vni: Any, direction: str, description: str, rule: str, order: int | None = None
) -> dict[str, Any]:
    """Adds an ACL to the network's `direction` chain at `order` (default: after the last)."""
    _require_direction(direction)
    user_input.require_name(description, "ACL description")
    if order is not None and not 0 <= order <= ORDER_MAX:
        raise InvalidInput(f"invalid order {order}: from 0 to {ORDER_MAX}")
    network = _require_managed(store, vni)
    rule = acl_rules.check_acl_rule(
        rule, network, direction, network_records.acls(store, network.vni)
    )
    with networks_lock(store):
        network = _require_managed(store, vni)
        key = str(network.vni)
        existing = [
            acl for acl in network_records.acls(store, network.vni) if acl.direction == direction
        ]
        if any(acl.description == description for acl in existing):
            raise Conflict(
                f"network {network.vni} has an '{direction}' ACL '{description}' already"
            )
        if order is None:
            order = min(max((acl.order for acl in existing), default=0) + 1, ORDER_MAX)
        acl_key = ("network.acl", key, direction, description)
        store.write(
            {acl_key: {"rule": rule, "order": order}},
            expect={("network", key): store.read_versioned(("network", key))[1], acl_key: -1},
        )
    return {
        "message": f"ACL '{description}' added to network {network.vni} "
        f"({direction}, order {order})"
    }


def _require_managed(store: Store, vni: Any) -> Network:
    network = require(store, vni)
    if not network.managed:
        raise InvalidInput(f"network {network.vni} is bridged: pvc filters managed networks only")
    return network


def _find(store: Store, vni: Any, description: str, direction: str | None) -> Acl:
    network = require(store, vni)
    if direction is not None:
        _require_direction(direction)
    found = [
        acl
        for acl in network_records.acls(store, network.vni)
        if acl.description == description and direction in (None, acl.direction)
    ]
    if not found:
        raise NotFound(f"network {network.vni} has no ACL {user_input.quoted(description)}")
    if len(found) > 1:
        raise InvalidInput(
            f"network {network.vni} has an ACL '{description}' in both directions: "
            "name one (in or out)"
        )
    return found[0]


def remove(
    store: Store, vni: Any, description: str, direction: str | None = None
) -> dict[str, Any]:
    acl = _find(store, vni, description, direction)
    network = require(store, vni)
    key = ("network.acl", str(network.vni), acl.direction, acl.description)
    with networks_lock(store):
        version = store.read_versioned(key)[1]
        if version < 0:
            raise NotFound(f"network {network.vni} has no ACL {user_input.quoted(description)}")
        store.write({}, delete=[key], expect={key: version})
    return {
        "message": f"ACL '{acl.description}' ({acl.direction}) removed from network {network.vni}"
    }


def _row(acl: Acl) -> dict[str, Any]:
    return {
        "direction": acl.direction,
        "description": acl.description,
        "rule": acl.rule,
        "order": acl.order,
    }


def list_acls(store: Store, vni: Any, direction: str | None = None) -> list[dict[str, Any]]:
    """The network's ACLs, `in` then `out`, each in order; `direction` keeps one of them."""
    network = require(store, vni)
    if direction is not None:
        _require_direction(direction)
    return [
        _row(acl)
        for acl in network_records.acls(store, network.vni)
        if direction in (None, acl.direction)
    ]


def info(store: Store, vni: Any, description: str, direction: str | None = None) -> dict[str, Any]:
    return _row(_find(store, vni, description, direction))
