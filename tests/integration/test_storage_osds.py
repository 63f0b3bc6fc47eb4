"""OSDs end to end: real node daemons (each in its network namespace) on the session's real
Ceph, loop devices on sparse files standing for disks, and the built dist/pvc against the API
of the cluster's primary. `pvc storage osd add --wait` makes a bluestore OSD in the node's
CRUSH host; a restarted daemon brings it back up; `remove --wait` drains it (the data stays
readable), purges it and wipes its disk; every refusal is one line and changes nothing."""

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pvc.ops import jobs
from tests.conftest import fails, free_port, ok
from tests.local_cluster import LocalCluster
from tests.processes import COMMAND_TIMEOUT

DISK_BYTES = 6 * 1024**3
OSD_NODE = "node2"
NO_CEPH_NODE = "node3"


def until(condition, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
    return found


def sh(*args: str) -> str:
    return subprocess.run(
        args, check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    ).stdout


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    """Three loop devices on sparse files: the nodes' spare disks."""
    folder = tmp_path_factory.mktemp("disks")
    devices = []
    try:
        for index in range(3):
            backing = folder / f"disk{index}.img"
            with open(backing, "wb") as file:
                file.truncate(DISK_BYTES)
            devices.append(sh("losetup", "--find", "--show", str(backing)).strip())
        yield devices
    finally:
        for device in devices:
            subprocess.run(["losetup", "-d", device], capture_output=True, timeout=COMMAND_TIMEOUT)


def ceph_osd_ids(ceph_service) -> set[int]:
    return {osd["osd"] for osd in ceph_service.ceph("osd", "dump")["osds"]}


def purge_leftovers(ceph_service, known: set[int]) -> None:
    """Whatever OSDs and host buckets the tests left in the session's Ceph, gone (by pid)."""
    for osd_id in ceph_osd_ids(ceph_service) - known:
        pid_file = ceph_service.folder / "run" / f"osd.{osd_id}.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if b"ceph-osd" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        ceph_service.ceph("osd", "down", str(osd_id), check=False)
        ceph_service.ceph("osd", "purge", str(osd_id), "--yes-i-really-mean-it", check=False)
    for name in ("node1", "node2", "node3"):
        ceph_service.ceph("osd", "crush", "rm", name, check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, ceph_service, disks):
    known = ceph_osd_ids(ceph_service)
    local = LocalCluster(
        tmp_path_factory.mktemp("osds"), 3, prefix="pvcd", subnet="10.231.0", zk_port=free_port()
    )
    # node3 has no Ceph; it is no coordinator either, so the API (on the primary) has Ceph
    local.settings = {"cluster": {"coordinators": ["node1", "node2"]}}
    local.node_settings = {NO_CEPH_NODE: {"ceph": {"enabled": False}}}
    local.up()
    local.use_ceph(ceph_service)
    try:
        local.start_all()
        yield local
    finally:
        try:
            for name in local.names:  # a stopping daemon stops its OSDs
                local.stop(name, timeout=60)
            purge_leftovers(ceph_service, known)
        finally:
            local.down()


@pytest.fixture(scope="module")
def zk(cluster):
    handler = cluster.running_observer(60)
    until(lambda: handler.exists(("node.storage_address", OSD_NODE)))
    yield handler
    handler.close()


@pytest.fixture
def pvc(run_pvc, cluster, zk):
    ok(run_pvc("connection", "add", "t", "-a", cluster.floating, "-p", "7370",
               "-k", cluster.api_key))  # fmt: skip

    def run(*args: str, timeout: float = 30):
        return run_pvc("-c", "t", "storage", "osd", *args, timeout=timeout)

    until(lambda: run("list").returncode == 0, 30)
    return run


@pytest.fixture(scope="module")
def made():
    """What the tests made, for the tests after them (they run in file order)."""
    return {}


def osd_of(ceph_service, osd_id: int) -> dict:
    return next(o for o in ceph_service.ceph("osd", "dump")["osds"] if o["osd"] == osd_id)


def tree_host(ceph_service, osd_id: int) -> str | None:
    nodes = ceph_service.ceph("osd", "tree")["nodes"]
    for node in nodes:
        if node["type"] == "host" and osd_id in node.get("children", []):
            return node["name"]
    return None


def test_requests_refused_before_any_task(pvc, disks, zk):
    assert "node 'nosuch' does not exist" in fails(pvc("add", "nosuch", disks[0]))
    assert "does not use Ceph" in fails(pvc("add", NO_CEPH_NODE, disks[0]))
    assert "invalid device" in fails(pvc("add", OSD_NODE, "dev/loop0"))
    assert "weight" in fails(pvc("add", OSD_NODE, disks[0], "--weight=-1"))
    assert "OSD 99 does not exist" in fails(pvc("info", "99"))
    assert "OSD 99 does not exist" in fails(pvc("remove", "99", "--yes"))
    assert "OSD 99 does not exist" in fails(pvc("out", "99"))
    assert "invalid OSD id" in fails(pvc("info", "abc"))
    refused = fails(pvc("set", "nosuchflag"))
    assert "noout" in refused and "nodeep-scrub" in refused  # the flags it takes
    assert zk.children("base.ceph.osds") == [] and zk.children("base.jobs") == []


def test_add_makes_a_running_osd_in_the_nodes_crush_host(pvc, zk, disks, ceph_service, made):
    before = ceph_osd_ids(ceph_service)
    out = ok(pvc("add", OSD_NODE, disks[0], "--weight", "0.05", "--wait", timeout=180))
    assert "done in" in out
    (osd_id,) = ceph_osd_ids(ceph_service) - before
    made["osd"] = osd_id
    osd = osd_of(ceph_service, osd_id)
    assert osd["up"] == 1 and osd["in"] == 1
    assert tree_host(ceph_service, osd_id) == OSD_NODE
    weights = {n["id"]: n.get("crush_weight") for n in ceph_service.ceph("osd", "tree")["nodes"]}
    assert weights[osd_id] == pytest.approx(0.05, abs=0.001)
    key = str(osd_id)
    assert zk.read(("osd", key)) == OSD_NODE and zk.read(("osd.node", key)) == OSD_NODE
    assert zk.read(("osd.device", key)) == disks[0]
    label = json.loads(sh("ceph-bluestore-tool", "show-label", "--dev", disks[0]))[disks[0]]
    assert zk.read(("osd.fsid", key)) == label["osd_uuid"] and label["whoami"] == key
    listed = json.loads(ok(pvc("list", "-f", "json")))
    mine = [o for o in listed if o["id"] == osd_id]
    assert mine and mine[0]["made_by_pvc"] and mine[0]["node"] == OSD_NODE
    info = json.loads(ok(pvc("info", key, "-f", "json")))
    assert info["device"] == disks[0] and info["fsid"] == label["osd_uuid"]
    assert f"{disks[0]} of node '{OSD_NODE}' is already osd.{osd_id}" in fails(
        pvc("add", OSD_NODE, disks[0])
    )


def test_disks_that_cannot_be_osds_fail_their_task_and_change_nothing(
    pvc, disks, ceph_service, tmp_path, made
):
    before = ceph_osd_ids(ceph_service)
    regular = tmp_path / "file.img"
    regular.write_bytes(b"\0" * 4096)
    sh("mkfs.ext4", "-q", disks[2])
    cases = {
        str(regular): "is not a block device",
        "/dev/pvc-no-such-disk": "does not exist",
        disks[2]: "in use: has an ext4 filesystem",
        disks[0]: "in use: has a Ceph bluestore label",  # osd.N's disk, seen from node1
    }
    for device, reason in cases.items():
        node = "node1" if device == disks[0] else OSD_NODE
        refused = fails(pvc("add", node, device, "--wait", timeout=60))
        assert "failed" in refused and reason in refused, refused
    assert ceph_osd_ids(ceph_service) == before
    assert "ext4" in sh("wipefs", disks[2])  # refused, not wiped
    sh("wipefs", "-a", disks[2])
    assert osd_of(ceph_service, made["osd"])["up"] == 1


def test_flags_and_in_out_are_ceph_s(pvc, ceph_service, made):
    osd_id = str(made["osd"])
    assert "noout is set" in ok(pvc("set", "noout"))
    assert "noout" in ceph_service.ceph("osd", "dump")["flags_set"]
    assert "noout is unset" in ok(pvc("unset", "noout"))
    assert "noout" not in ceph_service.ceph("osd", "dump")["flags_set"]
    assert f"osd.{osd_id} is now out" in ok(pvc("out", osd_id))
    assert osd_of(ceph_service, made["osd"])["in"] == 0
    ok(pvc("in", osd_id))
    assert osd_of(ceph_service, made["osd"])["in"] == 1


def test_a_restarted_daemon_brings_its_osd_back(cluster, ceph_service, made):
    osd_id = made["osd"]
    cluster.stop(OSD_NODE, timeout=60)
    until(lambda: osd_of(ceph_service, osd_id)["up"] == 0, 60)
    cluster.start(OSD_NODE)
    until(lambda: osd_of(ceph_service, osd_id)["up"] == 1, 90)
    assert tree_host(ceph_service, osd_id) == OSD_NODE


def test_a_killed_daemon_leaves_its_osd_running_and_the_next_adopts_it(cluster, ceph_service, made):
    osd_id = made["osd"]
    pid_file = ceph_service.folder / "run" / f"osd.{osd_id}.pid"
    running = int(pid_file.read_text())
    cluster.kill(OSD_NODE)
    cluster.start(OSD_NODE)
    log = cluster.workdir / OSD_NODE / "pvc.log"
    until(lambda: f"osd.{osd_id}: adopted the running ceph-osd (pid {running})" in log.read_text())
    assert int(pid_file.read_text()) == running and osd_of(ceph_service, osd_id)["up"] == 1


def test_an_osd_that_dies_is_started_again(ceph_service, made):
    osd_id = made["osd"]
    pid_file = ceph_service.folder / "run" / f"osd.{osd_id}.pid"
    first = int(pid_file.read_text())
    subprocess.run(["kill", "-9", str(first)], check=True, timeout=COMMAND_TIMEOUT)
    until(lambda: pid_file.exists() and int(pid_file.read_text() or 0) not in (0, first), 60)
    until(lambda: osd_of(ceph_service, osd_id)["up"] == 1, 90)


def test_a_removal_that_leaves_a_pool_below_min_size_is_refused(pvc, ceph_service, zk, made):
    ceph_service.ceph("osd", "pool", "create", "osdtest-two", "8", "8")
    try:
        ceph_service.ceph("osd", "pool", "set", "osdtest-two", "size", "2")
        ceph_service.ceph("osd", "pool", "set", "osdtest-two", "min_size", "2")
        refused = fails(pvc("remove", str(made["osd"]), "--yes"))
        assert "below min_size" in refused and "osdtest-two (min_size 2, 1 osd(s) left)" in refused
        assert zk.exists(("osd", str(made["osd"])))
        assert osd_of(ceph_service, made["osd"])["in"] == 1
    finally:
        ceph_service.ceph("osd", "pool", "delete", "osdtest-two", "osdtest-two",
                          "--yes-i-really-really-mean-it")  # fmt: skip


@pytest.fixture(scope="module")
def data_pool(ceph_service, tmp_path_factory, cluster):
    """A pool of one copy with 16 MiB in it, some of it on the OSD pvc made."""
    pool = "osdtest-drain"
    payload = tmp_path_factory.mktemp("data") / "object"
    payload.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    rados = ["rados", "-c", str(ceph_service.conf), "-p", pool]
    ceph_service.ceph("osd", "pool", "create", pool, "8", "8")
    try:
        for index in range(16):
            sh(*rados, "put", f"object{index}", str(payload))
        yield rados, payload
    finally:
        ceph_service.ceph("osd", "pool", "delete", pool, pool, "--yes-i-really-really-mean-it")


def draining(zk, task: str) -> dict | None:
    record = jobs.info(zk, task)
    return record if record["progress"]["message"].startswith("draining") else None


def test_a_cancelled_removal_puts_the_osd_back_in(pvc, ceph_service, zk, data_pool, made):
    osd_id = made["osd"]
    until(lambda: _pgs(ceph_service, osd_id) > 0, 30)
    frozen = ("nobackfill", "norecover", "norebalance")  # no data moves: it drains forever
    for flag in frozen:
        ok(pvc("set", flag))
    try:
        task = json.loads(ok(pvc("remove", str(osd_id), "--yes", "-f", "json")))["task"]
        record = until(lambda: draining(zk, task), 60)
        assert record["progress"]["total"] > 0
        assert osd_of(ceph_service, osd_id)["in"] == 0
        jobs.cancel(zk, task)
        until(lambda: jobs.info(zk, task)["state"] == "cancelled", 60)
        assert osd_of(ceph_service, osd_id)["in"] == 1 and zk.exists(("osd", str(osd_id)))
    finally:
        for flag in frozen:
            ok(pvc("unset", flag))


def test_remove_drains_purges_and_wipes(pvc, ceph_service, zk, disks, tmp_path, data_pool, made):
    osd_id = made["osd"]
    rados, payload = data_pool
    until(lambda: _pgs(ceph_service, osd_id) > 0, 60)  # it holds some of the data
    out = ok(pvc("remove", str(osd_id), "--yes", "--wait", timeout=240))
    assert "done in" in out and "PGs left on it" in out  # a line per step: not a terminal
    assert osd_id not in ceph_osd_ids(ceph_service)
    tree = ceph_service.ceph("osd", "tree")["nodes"]
    assert OSD_NODE not in [node["name"] for node in tree if node["type"] == "host"]
    assert not zk.exists(("osd", str(osd_id)))
    assert sh("wipefs", "--noheadings", disks[0]).strip() == ""
    label = subprocess.run(["ceph-bluestore-tool", "show-label", "--dev", disks[0]],
                           capture_output=True, timeout=COMMAND_TIMEOUT)  # fmt: skip
    assert label.returncode != 0
    copy = tmp_path / "copy"
    for index in range(16):
        sh(*rados, "get", f"object{index}", str(copy))
        assert copy.read_bytes() == payload.read_bytes()


def _pgs(ceph_service, osd_id: int) -> int:
    nodes = ceph_service.ceph("osd", "df")["nodes"]
    return next((n["pgs"] for n in nodes if n["id"] == osd_id), 0)


def test_an_add_whose_record_cannot_be_written_is_undone(pvc, zk, disks, ceph_service):
    before = ceph_osd_ids(ceph_service)
    next_id = str(min(set(range(len(before) + 1)) - before))  # the id Ceph gives a new OSD
    zk.write({("osd", next_id): "planted"})  # taken meanwhile: the add's transaction fails
    try:
        refused = fails(pvc("add", OSD_NODE, disks[1], "--wait", timeout=180))
        assert f"osd.{next_id} could not be recorded" in refused
        assert ceph_osd_ids(ceph_service) == before
        assert sh("wipefs", "--noheadings", disks[1]).strip() == ""
        assert zk.read(("osd", next_id)) == "planted" and not zk.exists(("osd.node", next_id))
    finally:
        zk.delete(("osd", next_id))


def test_an_add_whose_daemon_is_killed_leaves_an_osd_pvc_removes(
    pvc, cluster, zk, disks, ceph_service
):
    """The runner dies after the OSD process started, before the task ended: the OSD is
    recorded (the next daemon adopts it), `osd remove` removes it and the disk is free again."""
    before = ceph_osd_ids(ceph_service)
    out = ok(pvc("add", OSD_NODE, disks[1]))
    task = out.rsplit("(task ", 1)[1].rstrip(")\n")

    def started() -> bool:  # step 5, "waiting for osd.N to come up", follows its start
        return zk.read(("job", task))["progress"]["current"] == 5

    until(started, 120)
    cluster.kill(OSD_NODE)
    (osd_id,) = ceph_osd_ids(ceph_service) - before
    assert zk.read(("job", task))["state"] not in jobs.ENDED  # killed before it ended
    assert zk.read(("osd.fsid", str(osd_id))) and zk.read(("osd.device", str(osd_id))) == disks[1]
    cluster.start(OSD_NODE)
    until(lambda: zk.read(("job", task))["state"] == jobs.FAILED, 90)  # settled by the primary
    until(lambda: osd_of(ceph_service, osd_id)["up"] == 1, 90)
    listed = json.loads(ok(pvc("list", "-f", "json")))
    assert [o["made_by_pvc"] for o in listed if o["id"] == osd_id] == [True]
    out = ok(pvc("remove", str(osd_id), "--yes", "--wait", timeout=240))
    assert "done in" in out
    assert ceph_osd_ids(ceph_service) == before and not zk.exists(("osd", str(osd_id)))
    assert sh("wipefs", "--noheadings", disks[1]).strip() == ""
    out = ok(pvc("add", OSD_NODE, disks[1], "--wait", timeout=180))  # the disk is reusable
    (again,) = ceph_osd_ids(ceph_service) - before
    ok(pvc("remove", str(again), "--yes", "--wait", timeout=240))
    assert ceph_osd_ids(ceph_service) == before
