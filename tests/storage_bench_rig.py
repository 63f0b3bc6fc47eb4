"""What the storage benchmarks share (scripts/bench/storage, scripts/bench/provision-ova): a
single-host Ceph (scripts/ceph, on 10.249.<PVC_TEST_SLOT or 0>.1), a Zookeeper and `pvc api
serve` (dist/pvc) using that Ceph, with a pool of one copy; all stopped and removed after."""

import json
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pvc.ops import cluster
from pvc.zk.handler import ZKHandler
from tests import processes
from tests.ceph_service import CephService, session_address
from tests.conftest import ZK_SECRET, free_port, wait_for_http, write_config

REPO = Path(__file__).resolve().parents[1]
PVC = REPO / "dist" / "pvc"


class Api:
    def __init__(self, url: str, key: str):
        self.url, self.key = url, key

    def call(self, method: str, path: str, params: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(params).encode() if params else None,
            method=method,
            headers={"X-Api-Key": self.key, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            raise RuntimeError(f"{method} {path}: {refused.code} {refused.read()!r}") from None


@dataclass
class Bench:
    api: Api
    config: Path  # the API's configuration (for dist/pvc --config)
    ceph: CephService
    folder: Path


@contextmanager
def storage_bench(prefix: str, pool: str) -> Iterator[Bench]:
    """Ceph, Zookeeper and the API started in a new folder, and `pool` made; all stopped and
    the folder removed after the block."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    ceph = CephService(folder / "ceph", session_address())
    zk_folder, zk_port = folder / "zookeeper", free_port()
    api_process = None
    try:
        print(f"starting Ceph on {ceph.address} and Zookeeper on port {zk_port}...", flush=True)
        ceph.start()
        subprocess.run([str(REPO / "scripts" / "zookeeper"), "start", str(zk_folder),
                        str(zk_port)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        hosts = f"127.0.0.1:{zk_port}"
        zk = ZKHandler(hosts, connect_timeout=10, session_timeout=4, secret=ZK_SECRET).connect()
        cluster.initialize(zk)
        zk.close()
        port, key = free_port(), uuid.uuid4().hex
        api_section = {
            "listen_address": "127.0.0.1",
            "listen_port": port,
            "authentication": {"enabled": True, "keys": [{"key": key, "description": "bench"}]},
        }
        config = write_config(folder / "pvc.conf", hosts, api=api_section,
                              ceph=ceph.settings())  # fmt: skip
        with open(folder / "api.log", "wb") as log:
            api_process = subprocess.Popen([str(PVC), "api", "serve", "--config", str(config)],
                                           stdout=log, stderr=log)  # fmt: skip
        url = f"http://127.0.0.1:{port}/api/v1"
        wait_for_http(url + "/", api_process)
        api = Api(url, key)
        api.call("POST", "/storage/ceph/pool",
                 {"pool": pool, "pgs": 32, "copies": 1, "mincopies": 1})  # fmt: skip
        yield Bench(api, config, ceph, folder)
    finally:
        if api_process is not None:
            processes.end(api_process)
        subprocess.run([str(REPO / "scripts" / "zookeeper"), "stop", str(zk_folder)],
                       check=False, stdout=subprocess.DEVNULL)  # fmt: skip
        ceph.stop()
        subprocess.run(["rm", "-rf", str(folder)], check=False)
