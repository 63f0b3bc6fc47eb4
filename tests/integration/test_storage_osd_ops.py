"""pvc.ops.storage_osd on a real Zookeeper, without Ceph: the list and info merge pvc's records
with what the statistics collector wrote (ceph.status "osds", osd.stats) and show the OSDs Ceph
has that pvc did not make; add refuses what it can tell from the records, and creates one job
per request otherwise."""

import pytest

from pvc.errors import Conflict, NotFound
from pvc.ops import cluster, jobs, storage_osd
from tests.integration.test_node_ops import add_node

STATUS = {
    "health": "HEALTH_OK",
    "osds": {
        "0": {"up": True, "in": True, "host": "ceph-base", "weight": 0.0078},
        "3": {"up": False, "in": True, "host": "node2", "weight": 0.05},
    },
}


@pytest.fixture
def osds(zk):
    cluster.initialize(zk)
    add_node(zk, "node2", **{"storage_address": "10.0.0.12"})
    add_node(zk, "node3")  # no Ceph: no storage address
    add_node(zk, "node4", alive=False, **{"storage_address": "10.0.0.14"})
    zk.write(
        {
            ("osd", "3"): "node2",
            ("osd.node", "3"): "node2",
            ("osd.device", "3"): "/dev/sdb",
            ("osd.fsid", "3"): "2b54e18c-fb82-4e30-8d60-eb697efca8e1",
            ("osd.stats", "3"): {"pgs": 7, "utilization": 12.5},
            "ceph.status": STATUS,
        }
    )
    return zk


def test_the_list_merges_records_with_statistics_and_shows_every_ceph_osd(osds):
    listed = storage_osd.list_osds(osds)
    assert [(o["id"], o["node"], o["made_by_pvc"]) for o in listed] == [
        (0, "ceph-base", False),
        (3, "node2", True),
    ]
    mine = listed[1]
    assert mine["device"] == "/dev/sdb" and mine["stats"] == {"pgs": 7, "utilization": 12.5}
    assert (mine["up"], mine["in"], mine["weight"]) == (False, True, 0.05)
    assert [o["id"] for o in storage_osd.list_osds(osds, "node2")] == [3]
    assert storage_osd.info(osds, "0")["made_by_pvc"] is False
    assert storage_osd.info(osds, "3")["fsid"].startswith("2b54e18c")
    with pytest.raises(NotFound, match="OSD 9 does not exist"):
        storage_osd.info(osds, "9")


def test_without_statistics_the_records_still_list(osds):
    osds.delete("ceph.status")
    assert [(o["id"], o["up"]) for o in storage_osd.list_osds(osds)] == [(3, None)]


def test_add_refusals_from_the_records(osds):
    with pytest.raises(NotFound, match="node 'nosuch' does not exist"):
        storage_osd.add(osds, "nosuch", "/dev/sdc")
    with pytest.raises(Conflict, match="does not use Ceph"):
        storage_osd.add(osds, "node3", "/dev/sdc")
    with pytest.raises(Conflict, match="is not running"):
        storage_osd.add(osds, "node4", "/dev/sdc")
    with pytest.raises(Conflict, match="/dev/sdb of node 'node2' is already osd.3"):
        storage_osd.add(osds, "node2", "/dev/sdb")
    assert osds.children("base.jobs") == []


def test_add_makes_one_job_for_the_node_and_refuses_a_second(osds):
    answer = storage_osd.add(osds, "node2", "/dev/sdc", 0.5)
    record = jobs.info(osds, answer["task"])
    assert (record["kind"], record["runner"], record["state"]) == ("osd_add", "node2", "queued")
    assert record["args"] == {"node": "node2", "device": "/dev/sdc", "weight": 0.5}
    with pytest.raises(Conflict, match="already being added"):
        storage_osd.add(osds, "node2", "/dev/sdc")
