"""The node daemon as real processes in network namespaces, on a real Zookeeper."""

import json
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
import yaml

from pvc.ops import node as node_ops
from tests.conftest import free_port
from tests.local_cluster import PVC_BIN


@pytest.fixture(scope="module")
def observer(cluster):
    zk = cluster.running_observer(30)  # a primary, and every node's first keepalive
    yield zk
    zk.close()


def api_get(cluster, path):
    request = urllib.request.Request(cluster.api_url + path)
    request.add_header("X-Api-Key", cluster.api_key)
    with urllib.request.urlopen(request, timeout=3) as reply:
        return json.loads(reply.read())


def test_nodes_register_with_static_data_and_keepalives(cluster, observer):
    assert observer.children("base.nodes") == cluster.names
    for name in cluster.names:
        assert observer.read(("node.mode", name)) == "coordinator"
        assert observer.read(("node.state.daemon", name)) == "run"
        assert observer.exists(("node.alive", name))
        static = observer.read(("node.static", name))
        assert static["cores"] >= 1 and static["arch"] and static["kernel"]
        assert static["self_fence_after"] == 0  # self-fencing is off by default
        stats = observer.read(("node.stats", name))
        assert stats["mem_total"] > stats["mem_used"] > 0
    first = observer.read(("node.keepalive", "node1"))
    deadline = time.monotonic() + cluster.keepalive_interval * 10
    while observer.read(("node.keepalive", "node1")) <= first:
        assert time.monotonic() < deadline, "no new keepalive"
        time.sleep(0.1)


def test_exactly_one_primary_holds_the_address_and_serves_the_api(cluster, observer):
    primary = cluster.wait_for_primary(observer, 10)
    states = [observer.read(("node.state.router", name)) for name in cluster.names]
    assert sorted(states) == ["primary", "secondary", "secondary"]
    assert cluster.floating_holders() == [primary]
    nodes = api_get(cluster, "/node")
    assert [n["name"] for n in nodes] == cluster.names


def test_node_primary_moves_the_role_and_the_address(cluster, observer):
    old = cluster.wait_for_primary(observer, 10)
    new = next(name for name in cluster.names if name != old)
    cluster.wait_for_run(observer, new)
    node_ops.set_primary(observer, new)
    assert cluster.wait_for_primary(observer, 20, not_=old) == new
    assert cluster.floating_holders() == [new]
    assert observer.read(("node.state.router", old)) == "secondary"
    assert api_get(cluster, f"/node/{new}/coordinator-state")["state"] == "primary"


def test_second_daemon_with_the_same_name_refuses_to_start(cluster, observer):
    config = cluster.workdir / "node1" / "pvc.conf"
    started = time.monotonic()
    result = subprocess.run(
        [str(PVC_BIN), "node", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "pvc: a node daemon named node1 is already running (its Zookeeper session is alive); "
        "refusing to start a second one"
    ]
    # it gives up (does not wait forever): registration retries for the session timeout + 2 s
    assert time.monotonic() - started < cluster.session_timeout + 20
    assert observer.exists(("node.alive", "node1"))  # the running daemon is untouched


def test_hypervisor_node_runs_as_client(cluster, observer, tmp_path):
    config = cluster.write_config("hv1")
    process = subprocess.Popen(
        [str(PVC_BIN), "node", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cluster.wait_for_run(observer, "hv1", 30)
        assert observer.read(("node.mode", "hv1")) == "hypervisor"
        assert observer.read(("node.state.router", "hv1")) == "client"
        log = (cluster.workdir / "hv1" / "pvc.log").read_text()
        assert "hv1 is not in cluster.coordinators: running as a hypervisor" in log
    finally:
        process.terminate()
        assert process.wait(10) == 0
    assert observer.read(("node.state.daemon", "hv1")) == "stop"
    assert not observer.exists(("node.alive", "hv1"))
    assert "Traceback" not in process.stderr.read()


def test_graceful_stop_of_the_primary_hands_over(cluster, observer):
    primary = cluster.wait_for_primary(observer, 10)
    assert cluster.stop(primary) == 0
    successor = cluster.wait_for_primary(observer, 20, not_=primary)
    assert cluster.floating_holders() == [successor]
    assert observer.read(("node.state.daemon", primary)) == "stop"
    assert observer.read(("node.state.router", primary)) == "secondary"
    cluster.start(primary)
    cluster.wait_for_run(observer, primary, 30)


def test_partitioned_primary_drops_the_address_before_another_takes_it(cluster, observer):
    """Zookeeper traffic of the primary's namespace is dropped (nftables): it must give up the
    floating address by itself before its session expires and another node takes over."""
    primary = cluster.wait_for_primary(observer, 10)
    ns = cluster.namespace(primary)
    rules = (
        "table inet pvctest {\n chain out {\n  type filter hook output priority 0;\n"
        f"  ip daddr {cluster.subnet}.1 tcp dport {cluster.zk_port} drop\n }}\n}}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True, check=True
    )
    overlaps = []
    try:
        deadline = time.monotonic() + cluster.session_timeout + 10
        successor = None
        while time.monotonic() < deadline:
            holders = cluster.floating_holders()
            if len(holders) > 1:
                overlaps.append(holders)
            current = observer.read("base.config.primary_node")
            if current not in (primary, "none") and holders == [current]:
                successor = current
                break
            time.sleep(0.02)
        assert successor, "no other node took over from the partitioned primary"
    finally:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "pvctest"])
    assert overlaps == []
    # healed: the old primary comes back as a live secondary
    deadline = time.monotonic() + cluster.session_timeout + 10
    while not observer.exists(("node.alive", primary)):
        assert time.monotonic() < deadline, "the old primary did not rejoin"
        time.sleep(0.1)
    time.sleep(1)
    assert observer.read(("node.state.router", primary)) == "secondary"
    assert cluster.floating_holders() == [successor]


def test_unreachable_zookeeper_is_retried_and_logged(tmp_path):
    config = tmp_path / "pvc.conf"
    config.write_text(
        yaml.safe_dump(
            {
                "node": {"name": "lonely"},
                "cluster": {"coordinators": ["lonely"]},
                "zookeeper": {
                    "hosts": f"127.0.0.1:{free_port()}",
                    "connect_timeout": 0.5,
                    "secret": "a-secret",
                },
                "api": {"authentication": {"enabled": False}},
                "logging": {"file": str(tmp_path / "pvc.log")},
            }
        )
    )
    process = subprocess.Popen(
        [str(PVC_BIN), "node", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    process.terminate()
    assert process.wait(10) == 0
    log = (tmp_path / "pvc.log").read_text()
    assert "attempt 1: cannot reach Zookeeper" in log and "attempt 2:" in log
    assert "retrying in" in log and "Traceback" not in log
    assert "Traceback" not in process.stderr.read()


def test_ready_notification_and_log_reopen(cluster, observer, monkeypatch):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        path = cluster.workdir / "notify.sock"
        listener.bind(str(path))
        listener.settimeout(20)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        name = "node3"
        cluster.stop(name)
        log = cluster.workdir / name / "pvc.log"
        cluster.start(name)
        assert listener.recv(64) == b"READY=1"
        log.rename(log.with_suffix(".old"))  # as logrotate does
        cluster.signal(name, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not (log.exists() and "log file reopened" in log.read_text()):
            assert time.monotonic() < deadline, "SIGHUP did not reopen the log"
            time.sleep(0.1)
        assert cluster.alive(name)
