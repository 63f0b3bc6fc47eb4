"""Drivers: the only modules that touch outside systems (libvirt, netlink, nftables, Ceph, IPMI).

Each has a typed contract in pvc.drivers.contracts (a Protocol the daemon depends on, with the
contracts of the Ceph, nftables and dnsmasq drivers to come) and one implementation module.
The C bindings come from Debian packages, not from the zipapp; `import_binding` imports one
where it is needed and turns its absence into one line naming the package to install.
"""

import importlib
from types import ModuleType

from pvc.errors import Unavailable

DEBIAN_PACKAGES = {"libvirt": "python3-libvirt", "rados": "python3-rados", "rbd": "python3-rbd"}


def import_binding(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise Unavailable(
            f"the Python module '{name}' is missing: install the Debian package "
            f"{DEBIAN_PACKAGES[name]} (apt-get install {DEBIAN_PACKAGES[name]})"
        ) from None
