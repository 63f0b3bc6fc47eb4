"""What the provisioner's create tests share: profiles and the records they name, written
with the record store itself (pvc.ops.provisioner_store.add, as each record verb does), and
a network record; a two-node cluster with the session's Ceph whose daemons run the job."""

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pvc.ops import network_records
from pvc.ops import provisioner_store as records
from pvc.ops.network_records import Network
from pvc.zk.handler import ZKHandler
from pvc.zk.store import Store
from tests.conftest import free_port
from tests.libvirt_nodes import LibvirtNodes
from tests.local_cluster import LocalCluster
from tests.storage_rig import remove_ceph_pool

MIB = 1 << 20
SYSTEM = {"vcpus": 1, "memory": 64, "serial": True, "vnc": False, "vnc_bind": None,
          "node_limit": [], "node_selector": None, "node_autostart": False,
          "migration_method": "live"}  # fmt: skip


def disk(disk_id: str, pool: str, size: int | None = 8 * MIB, **extra: Any) -> dict[str, Any]:
    found = {"disk_id": disk_id, "pool": pool, "size": size, "source_volume": None,
             "filesystem": None, "filesystem_args": [], "mountpoint": None}  # fmt: skip
    return found | extra


def add_network(store: Store, vni: int) -> None:
    store.write(network_records.values(Network(vni, f"net {vni}", network_records.BRIDGED)))


def add_profile(
    store: Store,
    name: str,
    disks: list[dict[str, Any]],
    *,
    networks: list[int] | None = None,
    mac_template: str | None = None,
    system: dict[str, Any] | None = None,
    script: str | None = None,
    arguments: dict[str, str] | None = None,
) -> None:
    """A profile `name` with templates (and a script) of its own, all named `name`."""
    records.add(store, "system", name, SYSTEM | (system or {}))
    records.add(store, "network", name, {"mac_template": mac_template,
                                         "networks": networks or []})  # fmt: skip
    records.add(store, "storage", name, {"disks": disks})
    if script is not None:
        records.add(store, "script", name, {"text": script})
    records.add(store, "profile", name, {
        "type": "provisioner", "system_template": name, "network_template": name,
        "storage_template": name, "userdata": None, "script": name if script else None,
        "ova": None, "arguments": arguments or {},
    })  # fmt: skip


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return result


def task_of(answer: str) -> str:
    """The task id in a create's answer ("... (task ID)")."""
    return answer.rsplit("(task ", 1)[1].split(")")[0]


def ended(store: Store, task: str, timeout: float = 180) -> dict[str, Any]:
    return until(lambda: _ended(store, task), timeout, f"task {task} to end")


def _ended(store: Store, task: str) -> dict[str, Any] | None:
    record = store.read(("job", task))
    return record if record and record["state"] in ("done", "failed", "cancelled") else None


def nothing_left(store: Store, ceph: Any, pool: str, vm: str) -> None:
    """No VM record named `vm`, no volume record or RBD image of it in `pool`."""
    assert store.read(("name.domain", vm)) is None
    assert [v for v in store.children(("volumes.pool", pool)) if v.startswith(f"{vm}_")] == []
    images = json.loads(ceph.rbd("ls", pool, "--format", "json").stdout or "[]")
    assert [i for i in images if i.startswith(f"{vm}_")] == []


@contextlib.contextmanager
def provision_cluster(
    workdir: Path, ceph: Any, prefix: str, subnet: str, pool: str, *, libvirt: bool = False
) -> Iterator[tuple[LocalCluster, ZKHandler]]:
    """Two node daemons with the session's Ceph (and with `libvirt` a libvirtd each; else
    libvirt's test driver), building TCG guests whose consoles are logged in `workdir`; an
    observer once every node reaches Ceph. All gone afterwards, and the Ceph pool `pool`."""
    cluster = LocalCluster(workdir, 2, prefix=prefix, subnet=subnet, zk_port=free_port())
    consoles = workdir / "consoles"
    consoles.mkdir(parents=True, exist_ok=True)
    cluster.settings = {
        "provisioner": {"domain_type": "qemu", "console_log_directory": str(consoles)}
    }
    nodes = LibvirtNodes(workdir / "libvirt") if libvirt else None
    observer = None
    try:
        cluster.up()
        if nodes is not None:
            for name in cluster.names:  # the namespaces share one file system
                cluster.node_settings[name] = {"networks": {"run_directory": str(workdir / name)}}
            cluster.use_libvirt(nodes.start_cluster(cluster))
        cluster.use_ceph(ceph)
        cluster.start_all()
        observer = cluster.running_observer(90)
        until(lambda: all(observer.exists(("node.storage_address", n)) for n in cluster.names),
              60, "the nodes to reach Ceph")  # fmt: skip
        yield cluster, observer
    finally:
        if observer is not None:
            observer.close()
        cluster.down()
        if nodes is not None:
            nodes.stop()
        remove_ceph_pool(ceph, pool)
