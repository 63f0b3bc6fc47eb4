"""The tiny guest's root shell on its second serial port (tests.guest_shell), and what its
init takes from the kernel command line and DHCP: real TCG guests (one with a user-mode NIC,
one on a bridge with a real dnsmasq) under a libvirtd of its own in a network namespace."""

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest

from tests import processes
from tests.guest_shell import GuestShell
from tests.libvirt_nodes import LibvirtNodes, build_guest, linux_domain_xml
from tests.network_rig import sh

SLOT = int(os.environ.get("PVC_TEST_SLOT", "0"))
MAC = "52:54:00:12:34:56"
NET = f"10.204.{SLOT}"


@dataclass(frozen=True)
class Host:
    netns: str
    uri: str
    workdir: Path


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """A libvirtd in namespace pvcgs<slot>, whose bridge br0 (10.204.<slot>.1/24) has no
    DHCP server unless a test starts one."""
    workdir = tmp_path_factory.mktemp("gs")  # short: it holds the libvirtd sockets
    netns = f"pvcgs{SLOT}"
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    nodes = LibvirtNodes(workdir / "libvirt")
    try:
        sh("ip", "netns", "add", netns)
        sh("ip", "-n", netns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", netns, "addr", "add", f"{NET}.1/24", "dev", "br0")
        sh("ip", "-n", netns, "link", "set", "br0", "up")
        yield Host(netns, nodes.start("gs", netns, f"{NET}.1").uri, workdir)
    finally:
        nodes.stop()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


@contextlib.contextmanager
def guest(host: Host, name: str, **options) -> Iterator[GuestShell]:
    """A tiny guest named `name` (also its hostname) with a shell, for the block."""
    socket_path = host.workdir / f"{name}.sock"
    xml = linux_domain_xml(
        name, str(uuid.uuid4()), build_guest(), host.workdir / f"{name}.log",
        hostname=name, shell_socket=socket_path, **options,
    )  # fmt: skip
    connection = libvirt.open(host.uri)
    try:
        domain = connection.createXML(xml)
        shell = GuestShell.connect(socket_path, timeout=120)
        try:
            yield shell
        finally:
            shell.close()
            domain.destroy()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def shell(host):
    with guest(host, "shelly", nic="user", mac=MAC) as booted:
        yield booted


def test_commands_give_their_output_and_exit_codes(shell):
    release = shell.run("uname -r")
    assert release.code == 0
    assert release.output == shell.check("cat /proc/sys/kernel/osrelease")
    assert release.output.startswith("6.") and release.output.endswith("-cloud-amd64\n")
    assert shell.run("true").code == 0
    assert shell.run("exit 7").code == 7
    failed = shell.run("ls /no-such-file")
    assert failed.code != 0 and "no-such-file" in failed.output
    assert shell.run("printf 'a\\nb\\n'; echo c >&2") == shell.run("printf 'a\\nb\\nc\\n'")


def test_a_broken_command_does_not_end_the_shell(shell):
    assert shell.run("if then fi").code != 0  # a syntax error, in the child shell only
    assert shell.run("cat").code == 0  # its stdin is /dev/null: the next line is not eaten
    assert shell.check("echo still here") == "still here\n"


def test_the_guest_takes_its_hostname_and_leases_its_user_mode_nic_by_dhcp(shell):
    assert shell.check("hostname") == "shelly\n"
    addresses = shell.check(
        "for i in $(seq 60); do ip -4 addr show dev eth0 | grep -q inet && break; sleep 1; done;"
        " ip addr show dev eth0"
    )
    assert f"link/ether {MAC}" in addresses
    assert "inet 10.0.2.15/24" in addresses  # QEMU's user-mode DHCP server
    assert "nameserver 10.0.2.3" in shell.check("cat /etc/resolv.conf")


def test_the_guest_sends_its_hostname_and_takes_its_dns_settings_from_dhcp(host, tmp_path):
    leases = tmp_path / "leases"
    dnsmasq = subprocess.Popen(
        ["ip", "netns", "exec", host.netns, "dnsmasq", "--keep-in-foreground", "--port=0",
         "--no-resolv", "--interface=br0", "--bind-interfaces", f"--dhcp-leasefile={leases}",
         f"--dhcp-range={NET}.100,{NET}.150,1h", "--domain=shell.test",
         f"--dhcp-option=option:dns-server,{NET}.1", f"--pid-file={tmp_path / 'pid'}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with guest(host, "named", nic="br0") as named:
            address = named.check(
                "for i in $(seq 60); do ip -4 -o addr show dev eth0 | grep -q inet && break;"
                " sleep 1; done; ip -4 -o addr show dev eth0"
            )
            assert f" {NET}.1" in address  # leased from the range
            resolv = named.check("cat /etc/resolv.conf")
            assert resolv == f"search shell.test\nnameserver {NET}.1\n"
        # dnsmasq's lease file: expiry, MAC, address, the hostname the client sent, client id
        assert leases.read_text().split()[3] == "named"
    finally:
        processes.end(dnsmasq)
