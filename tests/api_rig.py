"""A bench rig without node daemons: a private Zookeeper, `pvc api serve` from a given binary
(so a build of an older commit can be measured the same way), hypervisor node records written
as daemons would, and VM records written in bulk. Used by scripts/bench/waits."""

import http.client
import json
import socket
import subprocess
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import yaml

from pvc.zk.handler import ZKHandler

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """One kept-alive connection to the API."""

    def __init__(self, port: int, timeout: float = 120.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def call(self, method: str, path: str, params: dict | None = None) -> tuple[int, object]:
        body = json.dumps(params) if params is not None else None
        headers = {"X-Api-Key": KEY, "Content-Type": "application/json"}
        self.conn.request(method, "/api/v1" + path, body, headers)
        reply = self.conn.getresponse()
        return reply.status, json.loads(reply.read())


def vm_xml(name: str, vm_uuid: str, memory: int = 64) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{vm_uuid}</uuid>"
        f"<memory unit='MiB'>{memory}</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    )


class Rig:
    """Zookeeper and the API of binary `pvc`, with files in `folder`."""

    def __init__(self, folder: Path, pvc: str):
        self.folder, self.pvc = folder, pvc
        self.zk_port, self.port = free_port(), free_port()
        self.hosts = f"127.0.0.1:{self.zk_port}"
        self.api_process: subprocess.Popen | None = None
        self.zk: ZKHandler | None = None

    def start(self) -> None:
        zk_dir = str(self.folder / "zookeeper")
        subprocess.run(
            [str(REPO / "scripts" / "zookeeper"), "start", zk_dir, str(self.zk_port)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        secret = uuid.uuid4().hex
        self.zk = ZKHandler(
            self.hosts, connect_timeout=10, session_timeout=10, secret=secret
        ).connect()
        config = {
            "node": {"name": "node1"},
            "cluster": {"coordinators": ["node1"]},
            "zookeeper": {
                "hosts": self.hosts,
                "connect_timeout": 5,
                "session_timeout": 10,
                "secret": secret,
            },
            "api": {
                "listen_address": "127.0.0.1",
                "listen_port": self.port,
                "authentication": {"enabled": True, "keys": [{"key": KEY}]},
            },
        }
        path = self.folder / "pvc.conf"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        log = open(self.folder / "api.log", "wb")  # noqa: SIM115 (kept open for the server)
        self.api_process = subprocess.Popen(
            [self.pvc, "api", "serve", "--config", str(path)], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                Api(self.port, 2).call("GET", "/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        status, answer = Api(self.port).call("POST", "/initialize", {"name": "bench"})
        assert status == 200, answer

    def stop(self) -> None:
        if self.api_process:
            self.api_process.terminate()
            self.api_process.wait(10)
        if self.zk:
            self.zk.close()
        zk_dir = str(self.folder / "zookeeper")
        subprocess.run([str(REPO / "scripts" / "zookeeper"), "stop", zk_dir], check=False)

    def add_nodes(self, names: list[str], mem_total: int = 1 << 20) -> None:
        """Live hypervisors (as their daemons would register), with plenty of memory."""
        stats = {"mem_total": mem_total, "mem_free": mem_total, "load": 0.0}
        for name in names:
            self.zk.write(
                {
                    ("node", name): "hypervisor",
                    ("node.mode", name): "hypervisor",
                    ("node.state.daemon", name): "run",
                    ("node.state.domain", name): "ready",
                    ("node.stats", name): stats,
                }
            )

    def add_vms(self, count: int, nodes: list[str], prefix: str = "bulk") -> list[str]:
        """Stopped VM records written straight into Zookeeper; their names."""

        def define(index: int) -> str:
            name, vm_uuid = f"{prefix}{index:05d}", str(uuid.uuid4())
            self.zk.write(
                {
                    ("domain", vm_uuid): name,
                    ("domain.xml", vm_uuid): vm_xml(name, vm_uuid),
                    ("domain.state", vm_uuid): "stop",
                    ("domain.node", vm_uuid): nodes[index % len(nodes)],
                    ("domain.lastnode", vm_uuid): "",
                    ("domain.node_limit", vm_uuid): [],
                    ("domain.node_selector", vm_uuid): "",
                    ("domain.node_autostart", vm_uuid): False,
                    ("domain.migration_method", vm_uuid): "live",
                    ("domain.memory", vm_uuid): 64,
                    ("domain.vcpus", vm_uuid): 1,
                    ("domain.tags", vm_uuid): [],
                    ("domain.failed_reason", vm_uuid): "",
                    ("name.domain", name): vm_uuid,
                }
            )
            return name

        self.zk.ensure("base.names.domains")  # an older `cluster init` did not make it
        with ThreadPoolExecutor(32) as pool:
            return list(pool.map(define, range(count)))

    def wait_until_listed(self, count: int) -> None:
        """Until the API's mirror shows `count` VMs."""
        api = Api(self.port)
        while len(api.call("GET", "/vm")[1]) < count:
            time.sleep(0.2)


@contextmanager
def running_rig(pvc: str):
    with tempfile.TemporaryDirectory(prefix="pvc-bench-rig-") as folder:
        rig = Rig(Path(folder), pvc)
        try:
            rig.start()
            yield rig
        finally:
            rig.stop()
