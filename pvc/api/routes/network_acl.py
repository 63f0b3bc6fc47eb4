"""ACL endpoints of a network: nft rules in its in and out chains (pvc.ops.network_acl)."""

from typing import Any

from pvc import limits
from pvc.api.app import Context, endpoint
from pvc.api.openapi import MESSAGE, listing, record
from pvc.api.params import Param, name_param
from pvc.api.routes.network import TAGS
from pvc.ops import network_acl
from pvc.ops.network_records import DIRECTIONS

ACL = record("direction", "description", "rule", order={"type": "integer"})


def direction_param(doc: str, required: bool = False) -> Param:
    return Param("direction", str, doc, required=required, choices=DIRECTIONS)


ONE_DIRECTION = direction_param("in or out: needed where both have an ACL of that description")
NOT_FOUND = "No such network or ACL"


@endpoint(
    "GET",
    "/network/<vni>/acl",
    summary="The network's ACLs, in then out, each in order",
    tags=TAGS,
    params=(direction_param("Only this direction's ACLs"),),
    responses={404: "No such network"},
    returns=listing(ACL),
)
def get_acls(ctx: Context, vni: str, direction: str | None) -> list[dict[str, Any]]:
    return network_acl.list_acls(ctx.zk, vni, direction)


@endpoint(
    "POST",
    "/network/<vni>/acl",
    summary="Add an ACL (one nft rule) to a managed network's in or out chain",
    tags=TAGS,
    params=(
        direction_param("The chain: in (to the network's VMs) or out (from them)", True),
        name_param("description", "The ACL's name", "ACL description", required=True),
        Param(
            "rule",
            str,
            "One nft rule, e.g. 'tcp dport 22 accept'",
            required=True,
            max_length=limits.ACL_RULE_MAX,
        ),
        Param(
            "order",
            int,
            "Its place in the chain (default: after the last)",
            minimum=0,
            maximum=network_acl.ORDER_MAX,
        ),
    ),  # fmt: skip
    responses={
        400: "A rule nft refuses (with nft's words) or that reaches outside its chain, or "
        "a bridged network",
        404: "No such network",
        409: "The direction has an ACL of that description",
    },
    returns=MESSAGE,
)
def post_acl(
    ctx: Context, vni: str, direction: str, description: str, rule: str, order: int | None
) -> dict[str, Any]:
    return network_acl.add(ctx.zk, vni, direction, description, rule, order)


@endpoint(
    "GET",
    "/network/<vni>/acl/<description>",
    summary="One ACL",
    tags=TAGS,
    params=(ONE_DIRECTION,),
    responses={400: "Both directions have an ACL of that description", 404: NOT_FOUND},
    returns=ACL,
)
def get_acl(ctx: Context, vni: str, description: str, direction: str | None) -> dict[str, Any]:
    return network_acl.info(ctx.zk, vni, description, direction)


@endpoint(
    "DELETE",
    "/network/<vni>/acl/<description>",
    summary="Remove an ACL",
    tags=TAGS,
    params=(ONE_DIRECTION,),
    responses={400: "Both directions have an ACL of that description", 404: NOT_FOUND},
    returns=MESSAGE,
)
def delete_acl(ctx: Context, vni: str, description: str, direction: str | None) -> dict[str, Any]:
    return network_acl.remove(ctx.zk, vni, description, direction)
