"""`pvc vm remove VM --delete-disks` through the built dist/pvc, a real API and the session's
real Ceph: the VM goes with its volumes and their snapshots; a running VM and a volume another
VM shares are refused before anything changes."""

# ruff: noqa: F811 (the storage fixture is imported)

from tests.conftest import fails, ok
from tests.storage_rig import storage  # noqa: F401 (a fixture)


def vm(storage, name: str, *volumes: str, state: str = "stop") -> str:
    uuid = storage.use(*volumes, state=state, name=name)
    storage.zk.write({("name.domain", name): uuid})
    return uuid


def test_the_vm_goes_with_its_volumes_and_their_snapshots(storage):
    pool, pvc = storage.pool, storage.pvc
    for volume in ("root", "data"):
        ok(pvc("storage", "volume", "add", pool, volume, "8M"))
    ok(pvc("storage", "volume", "snapshot", "add", pool, "data", "before"))
    ok(pvc("storage", "volume", "add", pool, "other", "8M"))
    uuid = vm(storage, "web1", f"{pool}/root", f"{pool}/data")
    assert "Its disks stay" in fails(pvc("vm", "remove", "web1", input="n\n"))
    out = ok(pvc("vm", "remove", "web1", "--delete-disks", "--yes"))
    assert f"with its volumes {pool}/root, {pool}/data" in out
    assert not storage.zk.exists(("domain", uuid))
    assert storage.rbd_ls() == ["other"]
    assert [v["name"] for v in storage.json("storage", "volume", "list", pool)] == ["other"]
    assert storage.json("storage", "volume", "snapshot", "list", pool) == []


def test_a_running_vm_or_a_shared_volume_is_refused_and_nothing_changes(storage):
    pool, pvc = storage.pool, storage.pvc
    ok(pvc("storage", "volume", "add", pool, "shared", "8M"))
    ok(pvc("storage", "volume", "add", pool, "own", "8M"))
    running = vm(storage, "run1", f"{pool}/own", state="start")
    line = fails(pvc("vm", "remove", "run1", "--delete-disks", "--yes"))
    assert line.endswith("VM 'run1' is running; stop it before deleting its disks")
    vm(storage, "a1", f"{pool}/shared")
    vm(storage, "b1", f"{pool}/shared")
    line = fails(pvc("vm", "remove", "a1", "--delete-disks", "--yes"))
    assert line.endswith(f"volume '{pool}/shared' is also used by VM(s) b1")
    assert storage.zk.exists(("domain", running))
    assert storage.rbd_ls() == ["own", "shared"]
    # without --delete-disks the disks stay
    ok(pvc("vm", "remove", "a1", "--yes"))
    assert storage.rbd_ls() == ["own", "shared"]
