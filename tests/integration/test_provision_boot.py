"""`pvc provisioner create` end to end, every record made with the CLI (dist/pvc): a bootable
image uploaded as a base volume; a profile (system, network and storage templates, the example
userdata and install script); a create that ends with a guest booted from its own copy of the
image, holding a DHCP lease on the managed network, whose console shows the files the install
script wrote into its root filesystem and its userdata's output. And the same image imported
as an OVA, a VM created from the OVA's profile and booted. Two node daemons with a libvirtd
each and the session's Ceph."""

import json
import os
import subprocess

import pytest

from pvc.ops.network_records import Network
from tests import guest_image
from tests.conftest import REPO, ok
from tests.ova_files import image_ova
from tests.provision_rig import provision_cluster, until

POOL = "provboot"
SLOT = int(os.environ.get("PVC_TEST_SLOT", "0"))
NET = f"10.121.{SLOT}"
NETWORK = Network(
    vni=300, description="provisioned", type="managed", ip4_network=f"{NET}.0/24",
    ip4_gateway=f"{NET}.1", dhcp4=True, dhcp4_start=f"{NET}.100", dhcp4_end=f"{NET}.199",
)  # fmt: skip
EXAMPLES = REPO / "scripts" / "provisioner"


@pytest.fixture(scope="module")
def rig(tmp_path_factory, ceph_service):
    from pvc.ops import network_records

    workdir = tmp_path_factory.mktemp("pboot")  # short: it holds the libvirtd sockets
    with provision_cluster(workdir, ceph_service, "pvcb", "10.237.0", POOL, libvirt=True) as (
        cluster,
        zk,
    ):
        zk.write(network_records.values(NETWORK))
        yield cluster, zk


@pytest.fixture(scope="module")
def pvc(rig, tmp_path_factory):
    """dist/pvc on the rig's API (through its floating address), with the base image uploaded
    as volume `guest` of the pool."""
    cluster, _ = rig
    client = tmp_path_factory.mktemp("client")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PVC_")}
    env["PVC_CLIENT_DIR"] = str(client)

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(REPO / "dist" / "pvc"), "-c", "t", *args], env=env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    ok(run("connection", "add", "t", "-a", cluster.floating, "-p", "7370", "-k", cluster.api_key))
    until(lambda: run("node", "list").returncode == 0, 60, "the API")
    ok(run("storage", "pool", "add", POOL, "8", "--copies", "1", "--mincopies", "1"))
    image = guest_image.build_image()
    ok(run("storage", "volume", "upload", POOL, "guest", str(image), "--wait", timeout=600))
    return run


def console(pvc, vm: str) -> list[str]:
    return ok(pvc("vm", "log", vm, "--lines", "1000")).splitlines()


def wait_for_console(pvc, vm: str, text: str, timeout: float = 600) -> list[str]:
    until(lambda: any(text in line for line in console(pvc, vm)), timeout, f"{text!r} on {vm}")
    return console(pvc, vm)


def test_a_created_vm_boots_from_its_copy_runs_its_script_and_userdata(pvc):
    p = ("provisioner",)
    ok(pvc(*p, "template", "system", "add", "boot", "--vcpus", "1", "--memory", "192",
           "--serial"))  # fmt: skip
    ok(pvc(*p, "template", "network", "add", "boot", "--vni", str(NETWORK.vni)))
    ok(pvc(*p, "template", "storage", "add", "boot"))
    ok(pvc(*p, "template", "storage", "disk", "add", "boot", "vda", "--pool", POOL,
           "--source-volume", "guest", "--size", "128M", "--mountpoint", "/"))  # fmt: skip
    ok(pvc(*p, "userdata", "add", "hello", str(EXAMPLES / "userdata-hello.sh")))
    ok(pvc(*p, "script", "add", "root-files", str(EXAMPLES / "root-files.py")))
    ok(pvc(*p, "profile", "add", "boot", "--system-template", "boot", "--network-template",
           "boot", "--storage-template", "boot", "--userdata", "hello", "--script",
           "root-files", "--arg", "colour=blue"))  # fmt: skip
    ok(pvc(*p, "create", "boot1", "boot", "--wait", timeout=900))
    lines = wait_for_console(pvc, "boot1", "pvc-guest: user-data exit ")
    assert "pvc-guest: user-data: hello from boot1" in lines
    assert "pvc-guest: user-data exit 0" in lines
    assert "pvc-guest: file provisioned: provisioned boot1 by boot" in lines
    assert "pvc-guest: file arg-colour: blue" in lines
    assert "pvc-guest: root hostname boot1" in lines

    def address() -> str | None:
        vm = json.loads(ok(pvc("vm", "info", "boot1", "-f", "json")))
        return vm["nics"][0]["lease_ip"]

    assert until(address, 120, "the guest's DHCP lease").startswith(f"{NET}.")
    vm = json.loads(ok(pvc("vm", "info", "boot1", "-f", "json")))
    assert vm["profile"] == "boot" and vm["volumes"] == [f"{POOL}/boot1_vda"]
    assert vm["state"] == "start"
    base = json.loads(ok(pvc("storage", "volume", "info", POOL, "guest", "-f", "json")))
    assert base["size"] < 128 * 1024 * 1024  # the copy was grown; its base is untouched


def test_an_imported_ova_boots_as_a_vm_of_its_profile(pvc, tmp_path):
    ova = image_ova(tmp_path, guest_image.build_image())
    ok(pvc("provisioner", "ova", "upload", "appliance", str(ova), "--pool", POOL, "--wait",
           timeout=600))  # fmt: skip
    profile = json.loads(ok(pvc("provisioner", "profile", "info", "appliance", "-f", "json")))
    assert (profile["type"], profile["ova"]) == ("ova", "appliance")
    ok(pvc("provisioner", "create", "app1", "appliance", "--wait", timeout=900))
    lines = wait_for_console(pvc, "app1", "pvc-guest: file image: ")
    assert any(line.startswith("pvc-guest booted") for line in lines)
    vm = json.loads(ok(pvc("vm", "info", "app1", "-f", "json")))
    assert vm["volumes"] == [f"{POOL}/app1_vda"] and vm["profile"] == "appliance"
