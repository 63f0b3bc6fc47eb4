"""The tiny guest's root shell on its second serial port (tests.guest_shell), and what its
init takes from the kernel command line: a real TCG guest with a user-mode NIC, under a
libvirtd of its own in a network namespace."""

import os
import subprocess
import uuid

import libvirt
import pytest

from tests.guest_shell import GuestShell
from tests.libvirt_nodes import LibvirtNodes, build_guest, linux_domain_xml
from tests.network_rig import sh

SLOT = int(os.environ.get("PVC_TEST_SLOT", "0"))
MAC = "52:54:00:12:34:56"


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gs")  # short: it holds the libvirtd sockets
    netns = f"pvcgs{SLOT}"
    subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
    nodes = LibvirtNodes(workdir / "libvirt")
    connection = None
    try:
        sh("ip", "netns", "add", netns)
        sh("ip", "-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        sh("ip", "-n", netns, "addr", "add", f"10.204.{SLOT}.1/24", "dev", "eth0")
        sh("ip", "-n", netns, "link", "set", "eth0", "up")
        node = nodes.start("gs", netns, f"10.204.{SLOT}.1")
        socket_path = workdir / "shell.sock"
        xml = linux_domain_xml(
            "pvc-shell-guest", str(uuid.uuid4()), build_guest(), workdir / "console.log",
            nic="user", hostname="shelly", mac=MAC, shell_socket=socket_path,
        )  # fmt: skip
        connection = libvirt.open(node.uri)
        connection.createXML(xml)
        guest = GuestShell.connect(socket_path, timeout=120)
        yield guest
        guest.close()
    finally:
        if connection is not None:
            connection.close()
        nodes.stop()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)


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
