"""`pvc provisioner create` on a real cluster: two node daemons with the session's Ceph (their
libvirt: the test driver, which is all a define-only or a start needs), the job run by the
primary's daemon. A create builds the VM's records, XML and volumes (new ones, and a copy of
a source volume grown to its disk's size); a create that fails at a step fails the task with
the step and the reason and leaves nothing behind (no VM record, no volume record, no image);
a create whose runner is killed half way is failed by the next primary and cleaned up."""

import json
import re
import subprocess
import uuid as uuid_module

import pytest

from pvc.ops import provisioner_store as records
from pvc.ops import vm_goals
from tests.conftest import fails, ok
from tests.processes import COMMAND_TIMEOUT
from tests.provision_rig import (
    MIB,
    add_network,
    add_profile,
    disk,
    ended,
    nothing_left,
    provision_cluster,
    task_of,
    until,
)

POOL = "provpool"


@pytest.fixture(scope="module")
def rig(tmp_path_factory, ceph_service):
    workdir = tmp_path_factory.mktemp("prov")
    with provision_cluster(workdir, ceph_service, "pvcp", "10.236.0", POOL) as found:
        yield found


@pytest.fixture
def pvc(rig, run_pvc):
    cluster, zk = rig
    ok(run_pvc("connection", "add", "t", "-a", cluster.floating, "-p", "7370",
               "-k", cluster.api_key))  # fmt: skip

    def run(*args: str, timeout: float = 60):
        return run_pvc("-c", "t", *args, timeout=timeout)

    until(lambda: run("node", "list").returncode == 0, 60, "the API")
    if not zk.exists(("pool", POOL)):
        ok(run("storage", "pool", "add", POOL, "8", "--copies", "1", "--mincopies", "1"))
        ok(run("storage", "volume", "add", POOL, "base", "8M"))
        add_network(zk, 200)
    return run


def vm_info(pvc, name: str) -> dict:
    return json.loads(ok(pvc("vm", "info", name, "-f", "json")))


def rbd_size(ceph_service, volume: str) -> int:
    info = ceph_service.rbd("info", f"{POOL}/{volume}", "--format", "json")
    return json.loads(info.stdout)["size"]


def test_define_only_builds_the_vm_stopped_with_its_volumes(rig, pvc, ceph_service):
    _, zk = rig
    disks = [disk("vda", POOL, 16 * MIB), disk("vdb", POOL, 24 * MIB, source_volume="base")]
    add_profile(zk, "web", disks, networks=[200], system={"vcpus": 2, "memory": 96})
    out = ok(pvc("provisioner", "create", "web1", "web", "--define-only", "--wait",
                 timeout=300))  # fmt: skip
    assert "done in" in out
    vm = vm_info(pvc, "web1")
    assert (vm["state"], vm["profile"], vm["vcpus"], vm["memory"]) == ("stop", "web", 2, 96)
    assert vm["volumes"] == [f"{POOL}/web1_vda", f"{POOL}/web1_vdb"]
    assert rbd_size(ceph_service, "web1_vda") == 16 * MIB
    assert rbd_size(ceph_service, "web1_vdb") == 24 * MIB  # the copy, grown
    volumes = json.loads(ok(pvc("storage", "volume", "list", POOL, "-f", "json")))
    assert {v["name"]: v["size"] for v in volumes}["web1_vdb"] == 24 * MIB
    xml = ok(pvc("vm", "dump", "web1"))
    assert '<domain type="qemu">' in xml and "<boot order='1'/>" in xml
    (mac,) = re.findall(r'<mac address="([0-9a-f:]+)"/>', xml)
    assert mac.startswith("52:54:00:") and '<source bridge="vmbr200"/>' in xml
    assert f"/consoles/{vm['uuid']}.log" in xml
    (task,) = json.loads(ok(pvc("cluster", "task", "list", "--kind", "provision", "-f", "json")))
    assert task["state"] == "done" and task["progress"]["current"] == 6
    assert task["result"]["volumes"] == vm["volumes"] and task["made"] == {
        "vm": None,
        "volumes": [],
    }


def test_a_create_starts_the_vm_and_refuses_changes_only_while_it_builds(rig, pvc):
    _, zk = rig
    add_profile(zk, "small", [disk("vda", POOL, 8 * MIB)])
    ok(pvc("provisioner", "create", "small1", "small", "--wait", timeout=300))
    until(lambda: vm_goals.arrived(vm_info(pvc, "small1"), vm_goals.Goal(("start",))), 90,
          "the VM to run")  # fmt: skip
    ok(pvc("vm", "stop", "small1"))


def test_an_ova_profile_copies_the_ovas_volumes_with_its_sizes(rig, pvc, ceph_service):
    _, zk = rig
    ok(pvc("storage", "volume", "add", POOL, "ova_appliance_vda", "12M"))
    records.add(zk, "ova", "appliance", {
        "pool": POOL, "volumes": [{"disk_id": "vda", "volume": "ova_appliance_vda",
                                   "size": 12 * MIB}],
        "vcpus": 3, "memory": 80, "nics": 0, "ovf": {},
    })  # fmt: skip
    records.add(zk, "profile", "appliance", {
        "type": "ova", "system_template": None, "network_template": None,
        "storage_template": None, "userdata": None, "script": None, "ova": "appliance",
        "arguments": {},
    })  # fmt: skip
    ok(pvc("provisioner", "create", "app1", "appliance", "--define-only", "--wait", timeout=300))
    vm = vm_info(pvc, "app1")
    assert (vm["vcpus"], vm["memory"], vm["profile"]) == (3, 80, "appliance")
    assert vm["volumes"] == [f"{POOL}/app1_vda"] and rbd_size(ceph_service, "app1_vda") == 12 * MIB


@pytest.mark.parametrize(
    ("profile", "error"),
    [
        ("fs", "step 1/6 (verify): disk vda: filesystem 'nosuchfs' is unknown here"),
        ("noclass", "step 1/6 (verify): script 'noclass' does not define class VMBuilderScript"),
        ("bigmem", "step 3/6 (define the VM): refused: "),
        ("ghost", f"step 4/6 (create volumes): '{POOL}/ghost' or volume '{POOL}/badghost_vdb'"),
    ],
)
def test_a_create_failing_at_a_step_leaves_nothing_behind(rig, pvc, ceph_service, profile, error):
    _, zk = rig
    base = [disk("vda", POOL, 8 * MIB)]
    if profile == "fs":
        add_profile(zk, profile, [disk("vda", POOL, filesystem="nosuchfs")])
    elif profile == "noclass":
        add_profile(zk, profile, base, script="print('no class here')\n")
    elif profile == "bigmem":
        add_profile(zk, profile, base, system={"memory": 64 << 30})
    else:  # a record of a volume Ceph does not have: the copy fails after vda was made
        zk.write({("volume", POOL, "ghost"): "", ("volume.stats", POOL, "ghost"): {"size": MIB}})
        add_profile(zk, profile, [*base, disk("vdb", POOL, None, source_volume="ghost")])
    name = f"bad{profile}"
    message = fails(pvc("provisioner", "create", name, profile, "--wait", timeout=300))
    assert message.startswith("pvc: task ") and f"failed: {error}" in message, message
    nothing_left(zk, ceph_service, POOL, name)


@pytest.fixture
def slow(rig, pvc, ceph_service):
    """A profile whose second disk is a copy of a volume full of data (the copy takes a
    while): (the profile's name, a wait for the copy of the VM's vdb to have started)."""
    _, zk = rig
    if not zk.exists(("volume", POOL, "big")):
        ok(pvc("storage", "volume", "add", POOL, "big", "256M"))
        subprocess.run(
            ["rbd", "-c", str(ceph_service.conf), "bench", "--io-type", "write", "--io-size",
             "4M", "--io-total", "256M", "--io-pattern", "seq", f"{POOL}/big"],
            capture_output=True, timeout=COMMAND_TIMEOUT * 4, check=True,
        )  # fmt: skip
        add_profile(zk, "slow", [disk("vda", POOL, 8 * MIB),
                                 disk("vdb", POOL, None, source_volume="big")])  # fmt: skip

    def copying(task: str, vm: str) -> None:
        until(lambda: f"{vm}_vdb" in zk.read(("job", task))["progress"]["message"], 120,
              "the copy to start")  # fmt: skip

    return "slow", copying


def test_a_cancelled_create_undoes_what_it_made(rig, pvc, ceph_service, slow):
    _, zk = rig
    profile, copying = slow
    task = task_of(ok(pvc("provisioner", "create", "cancelled", profile)))
    copying(task, "cancelled")
    ok(pvc("cluster", "task", "cancel", task))
    record = ended(zk, task, 180)
    assert record["state"] == "cancelled" and record["made"] == {"vm": None, "volumes": []}
    nothing_left(zk, ceph_service, POOL, "cancelled")


def test_a_create_whose_runner_is_killed_is_failed_and_cleaned_up(rig, pvc, ceph_service, slow):
    cluster, zk = rig
    profile, copying = slow
    task = task_of(ok(pvc("provisioner", "create", "killed", profile)))
    copying(task, "killed")
    runner = zk.read(("job.claim", task)).split()[0]
    cluster.kill(runner)
    record = ended(zk, task, 180)
    assert record["state"] == "failed" and record["attempts"] == 2
    assert "stopped half way" in record["error"] and "removed what it made" in record["error"]
    assert f"volume {POOL}/killed_vdb" in record["error"]
    nothing_left(zk, ceph_service, POOL, "killed")
    cluster.start(runner)


SCRIPT_XML = """class VMBuilderScript(VMBuilder):
    def create(self):
        return self.xml.replace("provisioned by pvc", "built for " + self.arguments["who"])
"""
SCRIPT_RAISES = """class VMBuilderScript(VMBuilder):
    def install(self):
        raise RuntimeError("no mirror reachable")
"""


def test_a_scripts_xml_is_stored_with_its_arguments_and_a_raising_script_undoes_all(
    rig, pvc, ceph_service
):
    pytest.importorskip("pvc.node.install_runner", reason="the install script runner (H4)")
    _, zk = rig
    add_profile(zk, "scripted", [disk("vda", POOL, 8 * MIB)], script=SCRIPT_XML,
                arguments={"who": "nobody"})  # fmt: skip
    ok(pvc("provisioner", "create", "scripted1", "scripted", "--no-start", "--arg", "who=web",
           "--wait", timeout=300))  # fmt: skip
    assert "built for web" in ok(pvc("vm", "dump", "scripted1"))
    assert vm_info(pvc, "scripted1")["state"] == "stop"
    add_profile(zk, "raises", [disk("vda", POOL, 8 * MIB)], script=SCRIPT_RAISES)
    message = fails(pvc("provisioner", "create", "raised", "raises", "--wait", timeout=300))
    assert (
        "failed: step 5/6 (run the install script): install script 'raises', install: "
        "no mirror reachable" in message
    ), message
    nothing_left(zk, ceph_service, POOL, "raised")


SCRIPT_MAC = """class VMBuilderScript(VMBuilder):
    def create(self):
        return self.xml.replace(self.networks[0]["mac"], self.arguments["mac"])
"""
SCRIPT_SLOW = """import time


class VMBuilderScript(VMBuilder):
    def install(self):
        self.log("installing")
        time.sleep(600)
"""


def test_a_scripts_xml_with_a_mac_in_use_is_refused_and_undone(rig, pvc, ceph_service):
    _, zk = rig
    add_profile(zk, "holder", [disk("vda", POOL, 8 * MIB)], networks=[200])
    ok(pvc("provisioner", "create", "holder1", "holder", "--define-only", "--wait",
           timeout=300))  # fmt: skip
    (mac,) = re.findall(r'<mac address="([0-9a-f:]+)"/>', ok(pvc("vm", "dump", "holder1")))
    add_profile(zk, "macs", [disk("vda", POOL, 8 * MIB)], networks=[200], script=SCRIPT_MAC)
    message = fails(pvc("provisioner", "create", "macs1", "macs", "--arg", f"mac={mac}",
                        "--wait", timeout=300))  # fmt: skip
    assert f"failed: step 6/6 (start): MAC {mac} is used already by VM 'holder1'" in message, (
        message
    )
    nothing_left(zk, ceph_service, POOL, "macs1")
    assert vm_info(pvc, "holder1")["state"] == "stop"


def installing(pvc, zk, vm: str) -> str:
    """Starts a create of `vm` from a profile whose script sleeps in install(); its task, once
    the script is installing."""
    if not zk.exists(records.key("profile", "sleepy")):
        add_profile(zk, "sleepy", [disk("vda", POOL, 8 * MIB)], script=SCRIPT_SLOW)
    task = task_of(ok(pvc("provisioner", "create", vm, "sleepy")))
    until(lambda: zk.read(("job", task))["progress"]["message"].endswith(": install"), 180,
          "the script's install phase")  # fmt: skip
    return task


def test_a_create_cancelled_during_its_install_script_ends_cancelled(rig, pvc, ceph_service):
    _, zk = rig
    task = installing(pvc, zk, "sleepy1")
    ok(pvc("cluster", "task", "cancel", task))
    record = ended(zk, task, 180)
    assert record["state"] == "cancelled" and record["error"] is None, record
    assert record["made"] == {"vm": None, "volumes": []}
    nothing_left(zk, ceph_service, POOL, "sleepy1")


def test_what_a_cancelled_create_could_not_undo_stays_in_its_record(rig, pvc, ceph_service):
    _, zk = rig
    task = installing(pvc, zk, "sleepy2")
    volume = f"{POOL}/sleepy2_vda"
    blocker = str(uuid_module.uuid4())  # a VM in state provision uses it: it counts as running
    xml = (f"<domain type='kvm'><name>blocker</name><uuid>{blocker}</uuid><memory unit='MiB'>"
           f"64</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices><disk type='network' "
           f"device='disk'><source protocol='rbd' name='{volume}'/><target dev='vda' "
           "bus='virtio'/></disk></devices></domain>")  # fmt: skip
    zk.write({("domain", blocker): "blocker", ("name.domain", "blocker"): blocker,
              ("domain.xml", blocker): xml, ("domain.state", blocker): "provision"})  # fmt: skip
    ok(pvc("cluster", "task", "cancel", task))
    record = ended(zk, task, 240)  # the undo retries the volume for WATCH_EXPIRY
    assert record["state"] == "cancelled" and record["made"] == {"vm": None, "volumes": [volume]}
    assert zk.read(("name.domain", "sleepy2")) is None
    zk.write({}, delete=[("domain", blocker), ("name.domain", "blocker")])
    ok(pvc("storage", "volume", "remove", POOL, "sleepy2_vda", "--yes"))
    nothing_left(zk, ceph_service, POOL, "sleepy2")
