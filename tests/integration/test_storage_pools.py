"""`pvc storage pool` through the built dist/pvc, a real API and the session's real Ceph:
each verb checked in Ceph's own view, and each refusal of the issue's list (duplicates,
copies > OSDs, unknown pools, a pool a VM uses, Ceph not configured) answered on one line
with nothing made."""
# ruff: noqa: F811 (the storage fixture is imported)

import json
import urllib.error
import urllib.request

from pvc.ops import cluster
from tests.conftest import fails, ok
from tests.storage_rig import storage  # noqa: F401 (a fixture)


def ceph_pool(ceph, name):
    return next(
        (p for p in ceph.ceph("osd", "pool", "ls", "detail") if p["pool_name"] == name), None
    )


def test_a_pool_is_made_as_asked_and_listed(storage):
    made = ceph_pool(storage.ceph, storage.pool)
    assert (made["size"], made["min_size"], made["pg_num"]) == (1, 1, 8)
    assert "rbd" in made["application_metadata"]
    pools = {p["name"]: p for p in storage.json("storage", "pool", "list")}
    assert pools[storage.pool] | {"stats": None} == {
        "name": storage.pool, "pgs": 8, "copies": 1, "mincopies": 1, "volumes": 0, "stats": None
    }  # fmt: skip
    assert storage.json("storage", "pool", "info", storage.pool)["pgs"] == 8
    assert storage.pool in ok(storage.pvc("storage", "pool", "list"))
    # the statistics the primary's collector writes are shown when they are there
    stats = {"used_bytes": 3 << 20, "max_avail_bytes": 5 << 30, "used_percent": 0.06}
    storage.zk.write({("pool.stats", storage.pool): stats})
    row = next(line for line in ok(storage.pvc("storage", "pool", "list")).splitlines()
               if line.startswith(storage.pool))  # fmt: skip
    assert row.split()[-3:] == ["3M", "5G", "0.1"]


def test_refusals_make_nothing(storage):
    pool = storage.pool
    assert "exists already" in fails(storage.pvc("storage", "pool", "add", pool, "8"))
    other = pool + "x"
    line = fails(storage.pvc("storage", "pool", "add", other, "8", "--copies", "3"))
    assert line.endswith(f"pool '{other}' needs 3 copies but only 1 OSD(s) are up and in")
    assert "power of two" in fails(storage.pvc("storage", "pool", "add", other, "12"))
    line = fails(storage.pvc("storage", "pool", "add", other, "8", "--copies", "1"))
    assert "invalid mincopies 2: from 1 to copies (1)" in line
    assert "must be a whole number" in fails(storage.pvc("storage", "pool", "add", other, "x"), 2)
    assert ceph_pool(storage.ceph, other) is None
    # a Ceph pool pvc did not make is not taken over
    storage.ceph.ceph("osd", "pool", "create", other, "8")
    line = fails(storage.pvc("storage", "pool", "add", other, "8", "--copies", "1",
                             "--mincopies", "1"))  # fmt: skip
    assert line.endswith(f"a Ceph pool '{other}' exists already (not made by pvc)")
    assert other not in [p["name"] for p in storage.json("storage", "pool", "list")]
    line = fails(storage.pvc("storage", "pool", "info", "nosuch"))
    assert line.endswith("pool 'nosuch' does not exist")
    assert "does not exist" in fails(storage.pvc("storage", "pool", "remove", "nosuch", "--yes"))


def test_remove_asks_first_and_is_refused_while_a_vm_uses_a_volume(storage):
    pool = storage.pool
    ok(storage.pvc("storage", "volume", "add", pool, "disk0", "64M"))
    assert fails(storage.pvc("storage", "pool", "remove", pool, input="n\n")).endswith(
        "not removed"
    )
    vm = storage.use(f"{pool}/disk0", state="stop", name="vm7")
    line = fails(storage.pvc("storage", "pool", "remove", pool, "--yes"))
    assert line.endswith(f"pool '{pool}' has volumes used by VM(s): vm7")
    assert ceph_pool(storage.ceph, pool) is not None
    storage.zk.write({}, delete=[("domain", vm)])
    assert "removed" in ok(storage.pvc("storage", "pool", "remove", pool, "--yes"))
    assert ceph_pool(storage.ceph, pool) is None
    assert storage.json("storage", "pool", "list") == []
    assert not storage.zk.exists(("volume", pool, "disk0"))
    assert fails(storage.pvc("storage", "volume", "list", pool)).endswith(
        f"pool '{pool}' does not exist"
    )


def test_the_api_asks_for_a_confirmation(storage):
    request = urllib.request.Request(
        f"{storage.api.url}/storage/ceph/pool/{storage.pool}", method="DELETE",
        headers={"X-Api-Key": storage.api.key},
    )  # fmt: skip
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("removed without confirmation")
    except urllib.error.HTTPError as refused:
        assert refused.code == 400
        assert "confirm it (confirm=true)" in json.loads(refused.read())["message"]


def test_without_ceph_the_answer_is_one_line_503(start_api, run_pvc, zk):
    cluster.initialize(zk)
    api = start_api()
    line = fails(run_pvc("--config", str(api.config_path), "storage", "pool", "add", "p1", "8"))
    assert "Ceph is not configured on this node" in line
