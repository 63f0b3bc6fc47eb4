"""The node daemon's shutdown while Zookeeper is unreachable (pvc.node.shutdown): a real
daemon on a Zookeeper of the test's own, which the test stops. The stop must end within the
shutdown's deadline, cleanly (the session abandoned, every step run), with the API child gone;
and a second SIGTERM must end the daemon at once."""

import signal
import subprocess
import time
from pathlib import Path

import pytest

from pvc import config as pvc_config
from pvc.node import shutdown
from tests import processes
from tests.conftest import free_port, write_config
from tests.integration.test_api_process import api_children, wait_for
from tests.local_cluster import PVC_BIN, REPO
from tests.processes import COMMAND_TIMEOUT

ZOOKEEPER = str(REPO / "scripts" / "zookeeper")


@pytest.fixture
def own_zookeeper(tmp_path):
    """A Zookeeper of this test's own: (its address, a function that stops it)."""
    folder, port = tmp_path / "zookeeper", free_port()
    run = dict(check=True, capture_output=True, timeout=COMMAND_TIMEOUT)
    subprocess.run([ZOOKEEPER, "start", str(folder), str(port)], **run)

    def stop() -> None:
        subprocess.run([ZOOKEEPER, "stop", str(folder)], **run)

    yield f"127.0.0.1:{port}", stop
    stop()


@pytest.fixture
def primary_daemon(tmp_path, own_zookeeper):
    """A one-coordinator cluster's daemon, primary, with its API child listening."""
    hosts, _ = own_zookeeper
    config = write_config(
        tmp_path / "pvc.conf",
        hosts,
        zookeeper={"session_timeout": 2, "connect_timeout": 2},
        api={"listen_address": "127.0.0.1", "listen_port": free_port(),
             "authentication": {"enabled": False}},
        libvirt={"enabled": False},
        timers={"keepalive_interval": 0.5, "relinquish_timeout": 5},
        logging={"file": str(tmp_path / "pvc.log")},
    )  # fmt: skip
    log = tmp_path / "pvc.log"
    with processes.running([str(PVC_BIN), "node", "run", "--config", str(config)]) as daemon:
        wait_for("the daemon primary", lambda: "now primary" in _read(log))
        wait_for("its API listening", lambda: "API serving" in _read(log))
        yield daemon, pvc_config.load(str(config)), log


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_a_stop_while_zookeeper_is_down_ends_within_its_deadline(own_zookeeper, primary_daemon):
    _, stop_zookeeper = own_zookeeper
    daemon, config, log = primary_daemon
    [api] = api_children(daemon.pid)
    stop_zookeeper()
    deadline = shutdown.deadline_seconds(config)
    started = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(deadline)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the daemon was still running {deadline:g} s after SIGTERM")
    took = time.monotonic() - started
    print(f"stop without Zookeeper: {took:.2f} s (deadline {deadline:g} s)")
    text = _read(log)
    assert code == 0, text
    assert "the session is over; the shutdown goes on without it" in text
    assert "node daemon stopped" in text
    assert "exiting now" not in text and "Traceback" not in text
    assert not Path(f"/proc/{api}").exists()


def test_a_second_sigterm_ends_the_daemon_at_once(own_zookeeper, primary_daemon):
    _, stop_zookeeper = own_zookeeper
    daemon, _, log = primary_daemon
    [api] = api_children(daemon.pid)
    stop_zookeeper()
    daemon.send_signal(signal.SIGTERM)
    wait_for("the first SIGTERM taken", lambda: "told to stop: the shutdown" in _read(log))
    daemon.send_signal(signal.SIGTERM)  # while the daemon still waits for Zookeeper
    assert daemon.wait(processes.KILL_WAIT) == 1
    assert "told to stop again while stopping: exiting now" in _read(log)
    assert "node daemon stopped" not in _read(log)
    wait_for("the API process to end with its daemon", lambda: not Path(f"/proc/{api}").exists())
