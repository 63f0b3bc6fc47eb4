"""OVA uploads that do not finish: a cancelled one removes its staging image at once; one
whose API process died is settled by the primary's job runner (the daemon's ova_upload kind),
which removes its staging image and the volumes it made (not a recorded volume of the same
form), and records nothing."""

# ruff: noqa: F811 (the storage fixture is imported)

from pvc.ops import provisioner_store
from tests.conftest import ok
from tests.integration.test_storage_upload import call, cancel, settled_after_api_death
from tests.ova_files import MIB
from tests.storage_rig import ceph_config, storage  # noqa: F401 (a fixture)


def test_a_cancelled_ova_upload_leaves_nothing(storage):
    params = {"name": "c1", "pool": storage.pool, "file_size": 4 * MIB}
    status, answer = call(storage, "POST", "/provisioner/ova", params)
    assert status == 202 and storage.rbd_ls() == ["_ova_c1"]
    task = answer["task"]
    status, refused = call(storage, "POST", "/provisioner/ova", params)
    assert status == 409 and f"OVA 'c1' is being uploaded (task {task})" in refused["message"]
    base = "/provisioner/ova/c1/upload"
    piece = {"task": task, "offset": 0}
    status, refused = call(storage, "PUT", "/provisioner/ova/c2/upload", piece, b"x")
    assert status == 404 and "no upload of OVA 'c2'" in refused["message"]
    status, refused = call(storage, "POST", base + "/finish", {"task": task})
    assert status == 409 and f"only 0 of {4 * MIB} bytes" in refused["message"]
    cancel(storage, task)
    assert storage.rbd_ls() == []
    assert not storage.zk.exists(provisioner_store.key("ova", "c1"))


def test_an_ova_upload_whose_api_died_is_cleaned_up_by_the_primary(storage):
    params = {"name": "dead", "pool": storage.pool, "file_size": 2 * MIB}
    status, answer = call(storage, "POST", "/provisioner/ova", params)
    assert status == 202, answer
    task = answer["task"]
    piece = {"task": task, "offset": 0}
    assert call(storage, "PUT", "/provisioner/ova/dead/upload", piece, b"x" * MIB)[0] == 200
    # what a conversion had made when the API died, and a recorded volume of the same form
    assert storage.ceph.rbd("create", "--size", "1", f"{storage.pool}/ova_dead_vda").returncode == 0
    ok(storage.pvc("storage", "volume", "add", storage.pool, "ova_dead_vdb", "1M"))
    record = settled_after_api_death(storage, task)
    assert record["state"] == "failed"
    assert record["error"].startswith("upload of OVA 'dead' ended:")
    assert "its images were removed" in record["error"]
    assert storage.rbd_ls() == ["ova_dead_vdb"]
    assert not storage.zk.exists(provisioner_store.key("profile", "dead"))
