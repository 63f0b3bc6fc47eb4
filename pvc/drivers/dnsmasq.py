"""dnsmasq (2.90): DHCP and DNS for a managed network, and the cluster's DNS forwarder.

Contract (DhcpDnsDriver), all pure but `start`:
- `network_config(network, paths, mtu=None, ipv6=True) -> str`: the configuration file of
  the network's dnsmasq. It binds only to the network's bridge (`interface`,
  `except-interface=lo`, `bind-dynamic`: the node's other interfaces, and other instances, are
  left alone); DHCPv4 (authoritative, LEASE_TIME leases, router and DNS server = the gateway;
  no NTP server: pvc runs none) when the network has DHCPv4; router advertisements (and a
  stateful DHCPv6 range when it has DHCPv6) when it has IPv6 and `ipv6` (the node can serve
  it); the MTU in both, so guests of a VXLAN network do not send 1500-byte frames; DNS for
  its domain, answered from leases and reservations and never forwarded (`domain`,
  `local=/domain/`, `expand-hosts`); other names go to the network's name servers
  (or the node's resolv.conf when it has none).
- `forwarder_config(listen, paths) -> str` and `forwarder_servers(networks) -> str`: the
  forwarder (no DHCP) on the given addresses, port 53, sending each managed network's domain
  (and its reverse zone) to that network's gateway and refusing everything else; the servers
  file is read again on SIGHUP, so a network added or changed needs no restart.
- `host_files(reservations) -> {(folder, name): text}`: one file per reserved MAC in the
  `dhcp-hostsdir` (MAC, address, name) and one in the `hostsdir` (address, name for DNS
  before the first lease). dnsmasq reads new files by itself; a changed or removed one only
  on SIGHUP.
- `lease_file(leases) -> str`, `parse_leases(text) -> {mac: {ip, hostname, expiry,
  client_id}}`: dnsmasq's lease file (`expiry mac ip hostname client-id`, '*' for none; IPv6
  lines are skipped: leases are kept in Zookeeper by MAC).
- `start(paths) -> Dnsmasq`: runs `dnsmasq --keep-in-foreground` on a configuration file,
  its log (stderr) in the paths' folder; it is SIGKILLed by the kernel when the thread that
  started it ends (PR_SET_PDEATHSIG), so it never outlives the daemon. `Dnsmasq.alive()`,
  `.reason()` (its last log line, after it exited), `.reload()` (SIGHUP), `.stop()`.
Values come from validated records (pvc.ops.network); a value with a line break is refused
(InvalidInput) rather than written into a file dnsmasq would read as two options.
"""

import ctypes
import ipaddress
import os
import re
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvc.errors import InvalidInput, Unavailable
from pvc.limits import one_line
from pvc.ops.network_records import Network
from pvc.zk import schema

DNSMASQ = "dnsmasq"
LEASE_TIME = "48h"  # the original's: a VM keeps its address across a weekend of outage
DHCP6_RANGE = ("::1000", "::ffff")  # host parts of the stateful DHCPv6 range
# seconds between router advertisements (router lifetime: 3 x): a new primary's router is
# learnt, and a gone one's forgotten, in 3 minutes rather than dnsmasq's default 30
RA_INTERVAL = 60
STOP_GRACE = 3.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class Paths:
    """An instance's files, all in one folder of the node's run directory."""

    folder: Path

    @classmethod
    def of(cls, run_directory: str, name: str) -> "Paths":
        return cls(Path(run_directory) / "dnsmasq" / name)

    @property
    def config(self) -> Path:
        return self.folder / "dnsmasq.conf"

    @property
    def leases(self) -> Path:
        return self.folder / "leases"

    @property
    def dhcp_hosts(self) -> Path:
        return self.folder / "dhcp-hosts"

    @property
    def dns_hosts(self) -> Path:
        return self.folder / "hosts"

    @property
    def servers(self) -> Path:
        return self.folder / "servers"

    @property
    def log(self) -> Path:
        return self.folder / "dnsmasq.log"

    @property
    def pid(self) -> Path:
        return self.folder / "dnsmasq.pid"


def _render(options: list[tuple[str, Any]]) -> str:
    lines = []
    for name, value in options:
        text = name if value is None else f"{name}={value}"
        if "\n" in text or "\r" in text:
            raise InvalidInput(f"dnsmasq: a line break in option {name!r}")
        lines.append(text)
    return "\n".join(lines) + "\n"


def _common(paths: Paths) -> list[tuple[str, Any]]:
    return [
        ("except-interface", "lo"),
        ("bind-dynamic", None),
        ("no-hosts", None),  # the node's /etc/hosts is not the network's business
        ("log-facility", "-"),
        ("pid-file", paths.pid),
    ]


def network_config(
    network: Network, paths: Paths, mtu: int | None = None, ipv6: bool = True
) -> str:
    """The network's dnsmasq configuration (`mtu`: its bridge's, handed out by DHCP and in
    router advertisements; the network's own if lower)."""
    bridge = network.bridge
    mtu = min((value for value in (mtu, network.mtu) if value), default=None)
    options: list[tuple[str, Any]] = [("interface", bridge), *_common(paths)]
    options += [
        ("dhcp-leasefile", paths.leases),
        ("dhcp-hostsdir", paths.dhcp_hosts),
        ("hostsdir", paths.dns_hosts),
    ]
    if network.domain:
        domain = network.domain
        options += [("domain", domain), ("local", f"/{domain}/"), ("expand-hosts", None)]
    if network.name_servers:
        options += [("no-resolv", None)] + [("server", ns) for ns in network.name_servers]
    if network.dhcp4 and network.ip4_network and network.ip4_gateway and network.dhcp4_start:
        netmask = ipaddress.ip_network(network.ip4_network, strict=False).netmask
        gateway = network.ip4_gateway
        options += [
            ("dhcp-authoritative", None),
            ("dhcp-range", f"{network.dhcp4_start},{network.dhcp4_end},{netmask},{LEASE_TIME}"),
            ("dhcp-option", f"option:router,{gateway}"),
            ("dhcp-option", f"option:dns-server,{gateway}"),
        ]
        if mtu:
            options.append(("dhcp-option", f"option:mtu,{mtu}"))
    if ipv6 and network.ip6_network and network.ip6_gateway:
        options.append(("enable-ra", None))
        mtu_part = f"mtu:{mtu}," if mtu else ""
        options.append(("ra-param", f"{bridge},{mtu_part}{RA_INTERVAL}"))
        if network.dhcp6:
            first, last = DHCP6_RANGE
            options.append(("dhcp-range", f"{first},{last},constructor:{bridge},64,{LEASE_TIME}"))
        else:
            options.append(("dhcp-range", f"::,constructor:{bridge},ra-stateless,64"))
        options.append(("dhcp-option", f"option6:dns-server,[{network.ip6_gateway}]"))
    return _render(options)


def forwarder_config(listen: list[str], paths: Paths) -> str:
    """The forwarder on `listen` (addresses), port 53: no DHCP, no upstream of its own."""
    options: list[tuple[str, Any]] = [("listen-address", address) for address in listen]
    options += _common(paths)
    options += [("no-resolv", None), ("servers-file", paths.servers)]
    return _render(options)


def forwarder_servers(networks: list[Network]) -> str:
    """Each managed network's domain and reverse zone, sent to its gateway."""
    options: list[tuple[str, Any]] = []
    for network in networks:
        if not (network.managed and network.domain):
            continue
        gateway = network.ip4_gateway or network.ip6_gateway
        if not gateway:
            continue
        options.append(("server", f"/{network.domain}/{gateway}"))
        if network.ip4_network and network.ip4_gateway:
            options.append(("rev-server", f"{network.ip4_network},{network.ip4_gateway}"))
    return _render(options) if options else ""


def host_files(reservations: dict[str, dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(folder: "dhcp-hosts" | "hosts", file name) -> text, for every reservation."""
    files = {}
    for mac, record in reservations.items():
        name = schema.mac_component(mac)
        ip, hostname = record.get("ip"), record.get("hostname")
        if not ip:
            continue
        fields = [mac, ip] + ([hostname] if hostname else [])
        files[("dhcp-hosts", name)] = _render([(",".join(fields), None)])
        if hostname:
            files[("hosts", name)] = _render([(f"{ip} {hostname}", None)])
    return files


def lease_file(leases: dict[str, dict[str, Any]]) -> str:
    """dnsmasq's lease file holding `leases` (MAC -> record)."""
    lines = []
    for mac, record in sorted(leases.items()):
        if not record.get("ip"):
            continue
        expiry = int(record.get("expiry") or 0)
        hostname = record.get("hostname") or "*"
        client_id = record.get("client_id") or "*"
        lines.append((f"{expiry} {mac} {record['ip']} {hostname} {client_id}", None))
    return _render(lines) if lines else ""


def parse_leases(text: str) -> dict[str, dict[str, Any]]:
    """The IPv4 leases of a lease file, by MAC; lines that are not whole are skipped."""
    found = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 5 or not fields[0].isdigit() or not _MAC.match(fields[1].lower()):
            continue
        try:
            ipaddress.IPv4Address(fields[2])
        except ValueError:
            continue
        found[fields[1].lower()] = {
            "ip": fields[2],
            "hostname": None if fields[3] == "*" else fields[3],
            "expiry": int(fields[0]),
            "client_id": None if fields[4] == "*" else fields[4],
        }
    return found


# --- processes ------------------------------------------------------------------------------


def _death_signal() -> Callable[[], None]:
    """What the child runs before exec: SIGKILL when the thread that started it ends (a
    daemon killed -9). libc is looked up here, in the parent: a lookup after fork could
    wait forever on a loader lock another thread held at the fork."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Dnsmasq:
    """A running dnsmasq, started by `start`."""

    def __init__(self, process: subprocess.Popen, log: Path):
        self._process = process
        self._log = log

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def reason(self) -> str:
        """Why it ended: its last log line (dnsmasq says why it failed on its way out)."""
        try:
            lines = [line for line in self._log.read_text().splitlines() if line.strip()]
        except OSError:
            lines = []
        said = lines[-1] if lines else "no message"
        return one_line(f"dnsmasq exited with code {self._process.poll()}: {said}")

    def reload(self) -> None:
        """SIGHUP: reads its hosts folders and servers file again."""
        if self.alive():
            self._process.send_signal(signal.SIGHUP)

    def stop(self, timeout: float = STOP_GRACE) -> None:
        if self.alive():
            self._process.terminate()
            try:
                self._process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process.wait(timeout)


def start(paths: Paths) -> Dnsmasq:
    """Starts dnsmasq on `paths.config`; it reports its own failures in its log (`reason`)."""
    with open(paths.log, "ab") as log:
        try:
            process = subprocess.Popen(
                [DNSMASQ, "--keep-in-foreground", f"--conf-file={paths.config}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_death_signal(),
            )
        except FileNotFoundError:
            raise Unavailable("dnsmasq is not installed (Debian package dnsmasq-base)") from None
    return Dnsmasq(process, paths.log)


def write_file(path: Path, text: str) -> None:
    """Replaces a file at once (a rename: dnsmasq never reads half of it; its watch on a
    folder skips the dot-file written first)."""
    scratch = path.with_name(f".{path.name}.new")
    scratch.write_text(text)
    os.replace(scratch, path)
