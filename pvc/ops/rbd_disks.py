"""A VM's RBD disks as QEMU needs them: what the node adds to a domain's XML before starting it.

A user writes `<disk type='network'><source protocol='rbd' name='pool/volume'/>...</disk>`;
the node starting the VM completes each such disk with what the user left out: a `<host>`
for each monitor in the Ceph configuration (`ceph.config_file`'s mon_host), and
`<auth username=CLIENT><secret type='ceph' uuid=SECRET/></auth>`, SECRET being the libvirt
secret every node of the cluster defines in its own libvirtd from its keyring
(pvc.node.vms). What the user wrote explicitly (hosts, auth) is kept. The completed XML is
what runs (and what a live migration carries); the stored XML stays as the user wrote it.

The secret's UUID is one per cluster, derived from the cluster's identity
(`base.config.cluster_uuid`, pvc.ops.cluster.identity) by `secret_uuid`: every node computes
the same one, so a guest migrates with its disks' auth unchanged, and nothing more is stored.
"""

import re
import uuid as uuid_module
from xml.dom import minidom

from pvc.errors import InvalidInput

_SECRET_NAMESPACE = uuid_module.UUID("1d7e5c0e-6a57-4d3c-9f1e-2c1b0e6a3f10")
DEFAULT_MON_PORT = 6789  # the monitors' v1 (legacy) port, which QEMU's librbd speaks too
_BRACKETED = re.compile(r"\[([^\]]*)\]")


def secret_uuid(cluster_uuid: str) -> str:
    """The UUID of the cluster's libvirt Ceph secret (the same on every node)."""
    return str(uuid_module.uuid5(_SECRET_NAMESPACE, f"ceph-client-secret:{cluster_uuid}"))


def secret_usage(cluster_uuid: str, client: str) -> str:
    """The secret's usage name (libvirt allows one secret per usage name)."""
    return f"pvc {cluster_uuid} client.{client}"


def monitor_hosts(mon_host: str) -> list[tuple[str, int]]:
    """(address, port) of each monitor in a ceph.conf mon_host value: "[v2:A:3300,v1:A:6789]"
    groups (the v1 address of each, else its v2), or plain "A[:port]" items."""
    hosts = []
    groups = _BRACKETED.findall(mon_host) if "v1:" in mon_host or "v2:" in mon_host else []
    for group in groups:
        addresses = {
            kind: rest for kind, _, rest in (a.strip().partition(":") for a in group.split(","))
        }
        chosen = addresses.get("v1") or addresses.get("v2")
        if chosen:
            address, _, port = chosen.split("/")[0].rpartition(":")
            hosts.append((address, int(port)))
    if groups:
        return hosts
    for item in re.split(r"[,;\s]+", mon_host.strip()):
        if item:
            address, colon, port = item.rpartition(":")
            hosts.append(
                (address, int(port)) if colon and port.isdigit() else (item, DEFAULT_MON_PORT)
            )
    return hosts


def completed(xml: str, hosts: list[tuple[str, int]], client: str, secret: str) -> str:
    """The domain XML with each RBD disk completed (see the module docstring); the XML as it
    is when it has none."""
    try:
        document = minidom.parseString(xml)
    except Exception as exc:  # expat's errors: the stored XML was checked, so hardly ever
        raise InvalidInput(f"the domain XML does not parse: {exc}") from None
    changed = False
    for disk in document.getElementsByTagName("disk"):
        source = _child(disk, "source")
        if disk.getAttribute("type") != "network" or source is None:
            continue
        if source.getAttribute("protocol") != "rbd":
            continue
        if _child(source, "host") is None and hosts:
            for address, port in hosts:
                host = document.createElement("host")
                host.setAttribute("name", address)
                host.setAttribute("port", str(port))
                source.appendChild(host)
            changed = True
        if _child(disk, "auth") is None and _child(source, "auth") is None:
            auth = document.createElement("auth")
            auth.setAttribute("username", client)
            secret_element = document.createElement("secret")
            secret_element.setAttribute("type", "ceph")
            secret_element.setAttribute("uuid", secret)
            auth.appendChild(secret_element)
            disk.insertBefore(auth, source)
            changed = True
    return document.documentElement.toxml() if changed else xml


def _child(parent: minidom.Element, tag: str) -> minidom.Element | None:
    return next(
        (node for node in parent.childNodes if node.nodeType == node.ELEMENT_NODE
         and node.tagName == tag),
        None,
    )  # fmt: skip
