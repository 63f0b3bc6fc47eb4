"""The primary's default route via networks.upstream.gateway (pvc.node.gateways, key UPSTREAM)
on real node daemons in namespaces: on the primary only, moving on handover, and dropped by
the watchdog when the primary is killed -9 (NAT leaves by the upstream network whatever the
node's own default route)."""

import pytest

from pvc.ops import node as node_ops
from tests.primary_network_rig import in_ns, network_cluster, observer_with, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = network_cluster(tmp_path_factory.mktemp("upstream"))
    local.gateway = f"{local.subnet}.1"  # type: ignore[attr-defined]  # the host's bridge
    for name in local.names:
        local.node_settings[name]["networks"]["upstream"] = {
            "device": "eth0",
            "gateway": local.gateway,  # type: ignore[attr-defined]
        }
    local.up()
    try:
        local.start_all()
        yield local
    finally:
        local.down()


@pytest.fixture(scope="module")
def observer(cluster):
    yield from observer_with(cluster)


def routed(cluster) -> list[str]:
    """The nodes with pvc's default route (protocol 80) via the upstream gateway on eth0."""
    wanted = f"default via {cluster.gateway} dev eth0 proto 80"
    return [
        name
        for name in cluster.names
        if wanted in in_ns(cluster.namespace(name), "ip", "route", "show", "default").stdout
    ]


def test_the_primary_routes_via_the_upstream_gateway_and_hands_the_route_over(cluster, observer):
    old = cluster.wait_for_primary(observer, 30)
    wait_for("the route on the primary only", lambda: routed(cluster) == [old])
    new = next(name for name in cluster.names if name != old)
    cluster.wait_for_run(observer, new)
    node_ops.set_primary(observer, new)
    assert cluster.wait_for_primary(observer, 20, not_=old) == new
    wait_for(f"the route on {new} only", lambda: routed(cluster) == [new])


def test_the_watchdog_drops_a_killed_primarys_route(cluster, observer):
    old = cluster.wait_for_primary(observer, 30)
    wait_for("the route on the primary", lambda: routed(cluster) == [old])
    cluster.kill(old)
    wait_for("the killed primary's route gone", lambda: old not in routed(cluster))
    new = cluster.wait_for_primary(observer, 30, not_=old)
    wait_for(f"the route on {new}", lambda: routed(cluster) == [new])
