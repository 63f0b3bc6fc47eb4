"""`pvc provisioner create` end to end: a bootable image uploaded as a base volume, a profile
(system, network and storage templates, userdata), and a create that ends with a guest booted
from its own copy of the image, holding a DHCP lease on the managed network, whose console
shows its userdata ran. Two node daemons with a libvirtd each and the session's Ceph.

Needs the install script runner (pvc.node.install_runner: the base VMBuilder) and the
bootable test image (tests.guest_image); skipped until both are there."""

import json
import os
import subprocess

import pytest

from pvc.ops import provisioner_store as records
from pvc.ops.network_records import Network
from tests.conftest import ok
from tests.provision_rig import MIB, add_profile, disk, provision_cluster, until

pytest.importorskip("pvc.node.install_runner", reason="the install script runner (H4)")
guest_image = pytest.importorskip("tests.guest_image", reason="the bootable test image (H5)")

POOL = "provboot"
SLOT = int(os.environ.get("PVC_TEST_SLOT", "0"))
NET = f"10.121.{SLOT}"
NETWORK = Network(
    vni=300, description="provisioned", type="managed", ip4_network=f"{NET}.0/24",
    ip4_gateway=f"{NET}.1", dhcp4=True, dhcp4_start=f"{NET}.100", dhcp4_end=f"{NET}.199",
)  # fmt: skip
USERDATA = "#!/bin/sh\necho hello from {{ vm_name }}\n"


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


def test_a_created_vm_boots_from_its_copy_gets_an_address_and_runs_its_userdata(
    rig, run_pvc, tmp_path
):
    cluster, zk = rig
    ok(run_pvc("connection", "add", "t", "-a", cluster.floating, "-p", "7370",
               "-k", cluster.api_key))  # fmt: skip

    def pvc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return run_pvc("-c", "t", *args, timeout=timeout)

    until(lambda: pvc("node", "list").returncode == 0, 60, "the API")
    image = guest_image.build_image()
    ok(pvc("storage", "pool", "add", POOL, "8", "--copies", "1", "--mincopies", "1"))
    ok(pvc("storage", "volume", "upload", POOL, "guest", str(image), "--wait", timeout=600))
    add_profile(zk, "boot", [disk("vda", POOL, 128 * MIB, source_volume="guest")],
                networks=[NETWORK.vni], system={"memory": 192})  # fmt: skip
    records.add(zk, "userdata", "hello", {"text": USERDATA})
    profile, version = records.read_versioned(zk, "profile", "boot")
    records.replace(zk, "profile", "boot", profile | {"userdata": "hello"}, version)
    ok(pvc("provisioner", "create", "boot1", "boot", "--wait", timeout=900))

    def console() -> list[str]:
        return ok(pvc("vm", "log", "boot1", "--lines", "1000")).splitlines()

    until(lambda: any("pvc-guest: user-data: hello from boot1" in line for line in console()),
          600, "the userdata to run on the guest")  # fmt: skip

    def address() -> str | None:
        vm = json.loads(ok(pvc("vm", "info", "boot1", "-f", "json")))
        return vm["nics"][0]["lease_ip"]

    assert until(address, 120, "the guest's DHCP lease").startswith(f"{NET}.")
    vm = json.loads(ok(pvc("vm", "info", "boot1", "-f", "json")))
    assert vm["profile"] == "boot" and vm["volumes"] == [f"{POOL}/boot1_vda"]
