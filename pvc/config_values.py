"""The rules for single values of a configuration: hosts, addresses, Zookeeper connect strings,
interface names, URIs, paths, API keys and numbers in a range.

Each check returns a complaint (the end of a sentence naming the value) or None when the value
is fine, so the node configuration (pvc.config) and the client's connections (pvc.cli) refuse
the same values with the same words.
"""

import ipaddress
import math
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from pvc import limits

Check = Callable[[Any], str | None]

_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_CHROOT_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_INTERFACE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]{0,14}")  # IFNAMSIZ - 1
_API_KEY = re.compile(r"[\x21-\x7e]+")  # visible ASCII: it travels in an HTTP header
HOSTS_RULE = (
    "must be host[:port],...[/chroot] (ports 1-65535, IPv6 addresses in brackets as [::1]:2181, "
    "chroot like /pvc or /a/b, not Zookeeper's own /zookeeper)"
)


def valid_host(text: str) -> bool:
    """An IP address (IPv6 without brackets) or a DNS host name."""
    if valid_address(text):
        return True
    name = text[:-1] if text.endswith(".") else text
    return 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(part) for part in name.split("."))


def valid_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_port(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` as (host, port or None); ValueError if
    malformed."""
    host, port = text, None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not valid_address(host) or (rest and not rest.startswith(":")):
            raise ValueError(text)
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not valid_host(host):
        raise ValueError(text)
    if port is None:
        return host, None
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(text)
    return host, int(port)


def zookeeper_hosts(text: str) -> tuple[list[tuple[str, int]], str | None]:
    """A Zookeeper connect string as its (host, port) pairs and chroot; ValueError if
    malformed. A host without a port is on 2181, as kazoo reads it. An IPv6 address needs its
    brackets here ("::1:2181" is one address, or ::1 on port 2181), and the chroot may not be
    Zookeeper's own /zookeeper."""
    servers, slash, chroot = text.partition("/")
    pairs = []
    for server in servers.split(","):
        server = server.strip()
        host, port = host_port(server)
        if ":" in host and not server.startswith("["):
            raise ValueError(text)
        pairs.append((host, port or 2181))
    if not slash:
        return pairs, None
    parts = chroot.split("/")
    if not all(_CHROOT_PART.fullmatch(part) and part not in (".", "..") for part in parts):
        raise ValueError(text)
    if parts[0] == "zookeeper":
        raise ValueError(text)
    return pairs, "/" + chroot


def check_zookeeper_hosts(value: str) -> str | None:
    try:
        zookeeper_hosts(value)
    except ValueError:
        return HOSTS_RULE
    return None


def check_host(value: str) -> str | None:
    return None if valid_host(value) else "must be a host name or an IP address"


def check_address(value: str) -> str | None:
    return None if valid_address(value) else "must be an IP address (e.g. 0.0.0.0 or ::)"


def check_cidr(value: str) -> str | None:
    """An address with its prefix length, as it goes on an interface (10.0.0.254/24)."""
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return "must be an address with its prefix length, e.g. 10.0.0.254/24"
    return None if "/" in value else "must give the prefix length, e.g. 10.0.0.254/24"


def check_interface(value: str) -> str | None:
    if _INTERFACE.fullmatch(value):
        return None
    return "must be a network interface name (at most 15 letters, digits, '.', '_', '-', '@')"


def check_uri(value: str) -> str | None:
    """A libvirt URI: scheme://[host]/path, e.g. qemu:///system or qemu+tcp://node1/system."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme and value.startswith(f"{parts.scheme}://") and value.isprintable():
        return None
    return "must be a libvirt URI, e.g. qemu:///system"


def check_absolute_path(value: str) -> str | None:
    if value.startswith("/") and value.isprintable() and "\0" not in value:
        return None
    return "must be an absolute path"


def check_api_key(value: str) -> str | None:
    if len(value) > limits.API_KEY_MAX:
        return f"must be at most {limits.API_KEY_MAX} characters"
    if not _API_KEY.fullmatch(value):
        return "must be visible ASCII characters without spaces (it is sent as a header)"
    return None


def check_port(value: int) -> str | None:
    return None if 0 < value < 65536 else "must be a port number (1-65535)"


def check_finite(value: Any) -> str | None:
    """A YAML number may be .inf or .nan: neither is a count nor a duration."""
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    return None


def between(low: float, high: float, *, above_low: bool = False) -> Check:
    """A number from `low` (exclusive if `above_low`) to `high`."""
    text = (
        f"greater than {low:g} and at most {high:g}" if above_low else f"from {low:g} to {high:g}"
    )

    def check(value: Any) -> str | None:
        fine = (low < value if above_low else low <= value) and value <= high
        return None if fine else f"must be {text}"

    return check
