"""The `networks` section of the node configuration: the node's three cluster networks
(upstream, cluster, storage), the device bridged client networks ride on, and where the
node keeps the files of its network services.

Each cluster network has a device; optionally this node's address on it (pvc adds it; null:
the address is managed outside pvc, and the first IPv4 address on the device is used), an
MTU pvc sets on the device, and a floating address (a.b.c.d/nn) the primary holds on it. The
cluster network carries Zookeeper, migrations and the managed networks' VXLAN underlay; the
upstream network is where managed networks with NAT leave the cluster (through `gateway`).
"""

from typing import Any

from pvc.config_values import (
    between,
    check_absolute_path,
    check_address,
    check_cidr,
    check_interface,
)

_OPTIONAL_STR = (str, type(None))
_OPTIONAL_INT = (int, type(None))
_mtu = between(576, 65535)
CLUSTER_NETWORKS = ("upstream", "cluster", "storage")


def _network(field: Any, what: str, gateway: bool = False) -> dict[str, Any]:
    section = {
        "device": field(_OPTIONAL_STR, None, f"Interface of the {what} network.", check_interface),
        "address": field(
            _OPTIONAL_STR,
            None,
            f"This node's address on the {what} network (a.b.c.d/nn), added by pvc; null: "
            "managed outside pvc (the device's first IPv4 address is used).",
            check_cidr,
        ),
        "mtu": field(_OPTIONAL_INT, None, f"MTU pvc sets on the {what} device (null: keep).", _mtu),
        "floating_ip": field(
            _OPTIONAL_STR,
            None,
            f"The {what} network's floating address (a.b.c.d/nn), held by the primary.",
            check_cidr,
        ),
    }
    if gateway:
        section["gateway"] = field(
            _OPTIONAL_STR,
            None,
            "The upstream router: where managed networks with NAT send their traffic.",
            check_address,
        )
    return section


def spec(field: Any) -> dict[str, Any]:
    """The section, built with pvc.config.Field (passed in: no import cycle)."""
    return {
        "upstream": _network(field, "upstream", gateway=True),
        "cluster": _network(field, "cluster"),
        "storage": _network(field, "storage"),
        "bridge_device": field(
            _OPTIONAL_STR,
            None,
            "Interface bridged client networks ride on (tagged vlan<vni>, or untagged: then it "
            "must carry no address and be none of the networks' devices above).",
            check_interface,
        ),
        "bridge_mtu": field(
            _OPTIONAL_INT, None, "MTU of bridged networks (null: the device's).", _mtu
        ),
        "run_directory": field(
            str,
            "/run/pvc",
            "Where the node keeps its network services' files (dnsmasq, nftables, leases).",
            check_absolute_path,
        ),
    }


MOVED = {
    "cluster.floating_ip": "networks.cluster.floating_ip",
    "cluster.floating_interface": "networks.cluster.device",
}


def moved_key(given: Any) -> str | None:
    """The complaint for a key of an older configuration that now lives elsewhere."""
    if not isinstance(given, dict) or not isinstance(given.get("cluster"), dict):
        return None
    for old, new in MOVED.items():
        if old.split(".")[1] in given["cluster"]:
            return f"config: '{old}' is now '{new}'"
    return None
