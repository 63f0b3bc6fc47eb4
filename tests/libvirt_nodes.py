"""Real libvirt nodes and tiny guests, for test fixtures and `make run`.

Each node is a libvirtd of its own (scripts/libvirt-node), optionally in the network namespace
of a LocalCluster node. Guests run under TCG (`<domain type='qemu'>`): this machine's /dev/kvm
cannot run them. The Linux guest is built by scripts/mkguest; its console prints "tick N" once a
second.
"""

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from tests.local_cluster import REPO, LocalCluster
from tests.processes import COMMAND_TIMEOUT

LIBVIRT_NODE = REPO / "scripts" / "libvirt-node"
GUEST_DIR = REPO / "build" / "guest"


@dataclass(frozen=True)
class LibvirtNode:
    name: str
    uri: str  # local: qemu:///system?socket=...
    tcp_uri: str  # from other nodes (and for migrations): qemu+tcp://address/system
    address: str


def _run(*command: str | Path) -> str:
    """Runs a script; its stdout, or an error with its stderr."""
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()}")
    return result.stdout


class LibvirtNodes:
    """The libvirt nodes started under `basedir`; stop() stops them."""

    def __init__(self, basedir: Path):
        self.basedir = Path(basedir)
        self.nodes: dict[str, LibvirtNode] = {}

    def start(self, name: str, netns: str | None = None, address: str = "127.0.0.1") -> LibvirtNode:
        """Starts (or keeps) node `name`; `address` must be netns's first address."""
        uri = _run(LIBVIRT_NODE, "up", name, self.basedir, *([netns] if netns else [])).strip()
        node = LibvirtNode(name, uri, f"qemu+tcp://{address}/system", address)
        self.nodes[name] = node
        return node

    def start_cluster(self, cluster: LocalCluster) -> list[LibvirtNode]:
        """One node per cluster node, in its namespace (the first one may take 8 s to probe
        QEMU, and then fills the cache that makes the others start in ~0.2 s)."""
        return [
            self.start(name, cluster.namespace(name), f"{cluster.subnet}.{10 + index}")
            for index, name in enumerate(cluster.names, start=1)
        ]

    def stop(self, *names: str) -> None:
        """Stops the named nodes (all by default) and the QEMU processes they run."""
        for name in names or list(self.nodes):
            _run(LIBVIRT_NODE, "down", name, self.basedir)
            self.nodes.pop(name, None)


@dataclass(frozen=True)
class Guest:
    kernel: Path
    initrd: Path


def build_guest(folder: Path = GUEST_DIR) -> Guest:
    """Builds the tiny Linux guest into `folder` unless it is there already (then ~10 ms)."""
    kernel, initrd = _run(REPO / "scripts" / "mkguest", folder).splitlines()
    return Guest(Path(kernel), Path(initrd))


def ticks(console_log: Path) -> list[int]:
    """The numbers of the "tick N" lines the guest printed so far."""
    if not console_log.exists():
        return []
    return [int(n) for n in re.findall(r"^tick (\d+)", console_log.read_text(), re.M)]


def wait_for_tick(console_log: Path, minimum: int, timeout: float) -> int:
    """Waits until the guest printed a tick >= `minimum`; returns the highest."""
    deadline = time.monotonic() + timeout
    while (highest := max(ticks(console_log), default=-1)) < minimum:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no tick {minimum} in {console_log} within {timeout} s")
        time.sleep(0.05)
    return highest


def _xml(value: object) -> str:
    """Escaped for XML text and attributes in single quotes."""
    return escape(str(value), {"'": "&apos;"})


def linux_domain_xml(
    name: str,
    uuid: str,
    guest: Guest,
    console_log: Path,
    memory_mib: int = 128,
    nic: str | None = None,
    *,
    hostname: str | None = None,
    mac: str | None = None,
    shell_socket: Path | None = None,
) -> str:
    """The tiny Linux guest: direct kernel boot, no disk. Its serial console is a pty (so
    `virsh console` works) logged to `console_log`, appended to by whichever node runs it: a
    path under /var/log/libvirt would be per node. `nic`: None, "user" (QEMU's own NAT) or the
    name of a bridge, for one virtio NIC, with MAC `mac` if given. `hostname`: the guest's
    name, sent in its DHCP requests. `shell_socket`: a second serial port, a UNIX socket at
    that path (made by QEMU) with a root shell on it (tests.guest_shell)."""
    cmdline = "console=ttyS0 quiet" + (f" pvc.hostname={hostname}" if hostname else "")
    os_xml = f"""<os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{_xml(guest.kernel)}</kernel>
    <initrd>{_xml(guest.initrd)}</initrd>
    <cmdline>{_xml(cmdline)}</cmdline>
  </os>"""
    log = f"<log file='{_xml(console_log)}' append='on'/>"
    devices = f"""<serial type='pty'>{log}<target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>"""
    if shell_socket:
        source = f"<source mode='bind' path='{_xml(shell_socket)}'/>"
        devices += f"\n    <serial type='unix'>{source}<target port='1'/></serial>"
    return _domain(name, uuid, memory_mib, os_xml, devices, nic, mac)


def firmware_domain_xml(
    name: str, uuid: str, memory_mib: int = 32, nic: str | None = None, mac: str | None = None
) -> str:
    """A diskless domain that only ever runs firmware (SeaBIOS, then iPXE with a NIC): it runs
    in ~0.3 s with a ~40 MB QEMU, for tests that need many VMs but no guest OS."""
    os_xml = "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>"
    return _domain(name, uuid, memory_mib, os_xml, "", nic, mac)


def _domain(
    name: str,
    uuid: str,
    memory_mib: int,
    os_xml: str,
    devices: str,
    nic: str | None,
    mac: str | None = None,
) -> str:
    address = f"<mac address='{_xml(mac)}'/>" if mac else ""
    if nic == "user":
        devices += f"""
    <interface type='user'>{address}<model type='virtio'/></interface>"""
    elif nic:
        source = f"<source bridge='{_xml(nic)}'/>"
        devices += f"""
    <interface type='bridge'>{address}{source}<model type='virtio'/></interface>"""
    return f"""<domain type='qemu'>
  <name>{_xml(name)}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  {os_xml}
  <features><acpi/></features>
  <devices>
    {devices}
  </devices>
</domain>
"""
