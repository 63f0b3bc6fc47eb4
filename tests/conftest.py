"""Fixtures that start the real services the tests need.

- `zk_server`: one real Zookeeper (Debian's package, scripts/zookeeper) for the session, on a
  free loopback port; `zk_hosts` gives each test its own chroot in it.
- `zk`: a connected ZKHandler on the test's chroot, holding the cluster secret ZK_SECRET (which
  `write_config` gives every daemon and API), so it reads and writes what they do.
- `api_server`: `dist/pvc api serve` as a subprocess on a free port, on the test's chroot.
- `run_pvc`: runs the built `dist/pvc` with a private client folder.
- `cluster`: a LocalCluster of three coordinators with their daemons running, one per test
  module that asks for it.
- `ceph_service`: one real single-host Ceph (scripts/ceph: 1 mon, 1 mgr, 1 bluestore OSD) for
  the session, started by the first test that asks for it; its `settings()` are a node's
  `ceph` configuration section.
Every test has a time limit (pytest-timeout, set in pyproject.toml), with a backstop behind it
(tests/timeout_backstop.py); helpers end processes in bounded time (tests/processes.py).
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kazoo.client import KazooClient

REPO = Path(__file__).resolve().parent.parent
PVC_BIN = REPO / "dist" / "pvc"
sys.path.insert(0, str(REPO))

from pvc.zk.handler import ZKHandler  # noqa: E402
from tests import processes  # noqa: E402
from tests.ceph_service import CephService, session_address  # noqa: E402
from tests.local_cluster import LocalCluster  # noqa: E402
from tests.processes import COMMAND_TIMEOUT  # noqa: E402
from tests.timeout_backstop import (  # noqa: E402, F401 (hooks behind pytest-timeout)
    pytest_runtest_protocol,
    pytest_timeout_set_timer,
)

ZK_SECRET = "test-cluster-secret"  # zookeeper.secret of the tests' clusters


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory):
    """A real standalone Zookeeper: yields its "127.0.0.1:port" address."""
    folder = tmp_path_factory.mktemp("zookeeper")
    port = free_port()
    subprocess.run(
        [str(REPO / "scripts" / "zookeeper"), "start", str(folder), str(port)],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=COMMAND_TIMEOUT,
    )
    yield f"127.0.0.1:{port}"
    subprocess.run(
        [str(REPO / "scripts" / "zookeeper"), "stop", str(folder)],
        check=False,
        timeout=COMMAND_TIMEOUT,
    )


@pytest.fixture(scope="session")
def ceph_service(tmp_path_factory):
    """The session's real Ceph (see tests.ceph_service)."""
    # not under pytest's folders (mode 0700): the OSDs pvc starts run as user ceph, which must
    # reach their run folder (scripts/ceph opens the Ceph's own folder to others, 0711)
    slot = os.environ.get("PVC_TEST_SLOT", "")
    folder = Path(tempfile.mkdtemp(prefix=f"pvc-ceph{slot}-"))
    service = CephService(folder, session_address())
    try:
        service.start()
        yield service
    finally:
        service.stop()  # --purge: the folder goes too


@pytest.fixture
def zk_hosts(zk_server):
    """A connect string for a fresh chroot of this test's own."""
    chroot = f"/test-{uuid.uuid4().hex[:12]}"
    admin = KazooClient(hosts=zk_server)
    admin.start(timeout=10)
    admin.ensure_path(chroot)
    admin.stop()
    admin.close()
    return f"{zk_server}{chroot}"


@pytest.fixture
def zk(zk_hosts):
    handler = ZKHandler(zk_hosts, connect_timeout=10, session_timeout=4, secret=ZK_SECRET).connect()
    yield handler
    handler.close()


@pytest.fixture(scope="session")
def pvc_bin():
    if not os.access(PVC_BIN, os.X_OK):
        pytest.fail(f"{PVC_BIN} is missing: build it with 'make' first")
    return str(PVC_BIN)


def write_config(path: Path, zk_hosts: str, **sections) -> Path:
    """A node configuration for tests: one coordinator, the test's Zookeeper chroot."""
    document = {
        "node": {"name": "node1"},
        "cluster": {"coordinators": ["node1"]},
        "zookeeper": {
            "hosts": zk_hosts,
            "connect_timeout": 5,
            "session_timeout": 4,
            "secret": ZK_SECRET,
        },
    }
    for name, values in sections.items():
        document.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(document))
    path.chmod(0o600)
    return path


@dataclass
class ApiServer:
    url: str  # e.g. http://127.0.0.1:PORT/api/v1
    port: int
    key: str
    config_path: Path
    process: subprocess.Popen


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers, even if with an error status
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def start_api(tmp_path, zk_hosts, pvc_bin):
    """Starts `pvc api serve` with extra config sections; returns an ApiServer."""
    started: list[subprocess.Popen] = []

    def start(**sections) -> ApiServer:
        port = free_port()
        key = uuid.uuid4().hex
        api = {
            "listen_address": "127.0.0.1",
            "listen_port": port,
            "authentication": {"enabled": True, "keys": [{"key": key, "description": "test"}]},
        }
        api.update(sections.pop("api", {}))
        config = write_config(tmp_path / f"pvc-{port}.conf", zk_hosts, api=api, **sections)
        with open(tmp_path / f"api-{port}.log", "wb") as log:
            process = subprocess.Popen(
                [pvc_bin, "api", "serve", "--config", str(config)], stdout=log, stderr=log
            )
        started.append(process)
        scheme = "https" if api.get("tls", {}).get("enabled") else "http"
        url = f"{scheme}://127.0.0.1:{port}/api/v1"
        if scheme == "http":
            wait_for_http(url + "/", process)
        return ApiServer(url, port, key, config, process)

    yield start
    for process in started:
        processes.end(process)


@pytest.fixture
def api_server(start_api):
    """A running API with authentication on (key in .key) on this test's Zookeeper chroot."""
    return start_api()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A LocalCluster of three coordinators, every daemon started; down after the module."""
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), 3, zk_port=free_port()).up()
    local.start_all()
    yield local
    local.down()


@pytest.fixture
def run_pvc(tmp_path, pvc_bin):
    """Runs dist/pvc with a private client folder; returns the CompletedProcess."""
    client_dir = tmp_path / "client"

    def run(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 30):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PVC_")}
        full_env["PVC_CLIENT_DIR"] = str(client_dir)
        full_env.update(env or {})
        return subprocess.run(
            [pvc_bin, *args],
            env=full_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    run.client_dir = client_dir
    return run


def ok(result) -> str:
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    return result.stdout


def fails(result, code: int = 1) -> str:
    """The single stderr line of a failed command."""
    assert "Traceback" not in result.stderr
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
