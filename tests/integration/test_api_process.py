"""The API as a supervised child of every coordinator's node daemon (pvc.node.api_process), on
a LocalCluster: warm on every coordinator, isolated from the daemon's coordination, restarted
when it dies, gone when its daemon is killed, and answering at once after a failover."""

import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pvc.node.api_process import ApiProcess
from tests.integration.test_api_patterns import CATASTROPHIC, add_vm
from tests.local_cluster import LocalCluster

WAIT = 20.0  # seconds any expected change may take before the test fails


@pytest.fixture(scope="module")
def observer(cluster):
    zk = cluster.running_observer()
    yield zk
    zk.close()


def api_children(daemon_pid: int) -> list[int]:
    """The `pvc api serve` children of a daemon."""
    children: list[int] = []
    for task in Path(f"/proc/{daemon_pid}/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return [pid for pid in children if b"\0api\0serve\0" in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def wait_for(what: str, predicate, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)
    return value


def api_status(cluster: LocalCluster, path: str, timeout: float = 5) -> int:
    request = urllib.request.Request(cluster.api_url + path)
    request.add_header("X-Api-Key", cluster.api_key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def api_pid(cluster: LocalCluster, name: str) -> int:
    """The node's one API child, once it is there."""
    daemon = cluster.processes[name].pid
    return wait_for(f"{name}'s API process", lambda: _one(api_children(daemon)))


def _one(pids: list[int]) -> int | None:
    assert len(pids) <= 1, pids
    return pids[0] if pids else None


def test_every_coordinator_runs_a_warm_api_and_only_the_primary_gets_requests(cluster, observer):
    primary = cluster.wait_for_primary(observer, WAIT)
    assert all(api_pid(cluster, name) for name in cluster.names)
    assert cluster.floating_holders() == [primary]
    assert api_status(cluster, "/node") == 200


def test_coordination_holds_while_the_api_is_busy_or_frozen(cluster, observer):
    """Pathological requests burn CPU in the primary's API for several session timeouts, and
    then its API process is frozen: the primary keeps its role and its keepalives."""
    primary = cluster.wait_for_primary(observer, WAIT)
    add_vm(observer, "a" * 27 + "-x")
    listed = "/vm?" + urllib.parse.urlencode({"match": "a*-x"})
    wait_for("the API to list the VM", lambda: _listed(cluster, listed))
    query = "/vm?" + urllib.parse.urlencode({"match": CATASTROPHIC, "regex": "true"})
    busy_until = time.monotonic() + 3 * cluster.session_timeout
    answers: list[int] = []

    def hammer() -> None:
        while time.monotonic() < busy_until:
            answers.append(api_status(cluster, query, timeout=30))

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    first = observer.read(("node.keepalive", primary))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # each ran out of time (400) or found every pattern worker busy (503)
    assert 400 in answers and set(answers) <= {400, 503}
    frozen = api_pid(cluster, primary)
    os.kill(frozen, signal.SIGSTOP)
    try:
        time.sleep(3 * cluster.session_timeout)
        assert observer.read("base.config.primary_node") == primary
        assert observer.read(("node.state.router", primary)) == "primary"
        assert cluster.floating_holders() == [primary]
        assert observer.read(("node.keepalive", primary)) > first
    finally:
        os.kill(frozen, signal.SIGCONT)
    assert api_status(cluster, "/node") == 200


def test_a_killed_api_process_is_started_again(cluster, observer):
    primary = cluster.wait_for_primary(observer, WAIT)
    old = api_pid(cluster, primary)
    os.kill(old, signal.SIGKILL)
    new = wait_for("a new API process", lambda: _one(
        [pid for pid in api_children(cluster.processes[primary].pid) if pid != old]))  # fmt: skip
    assert new != old
    wait_for("the API answering again", lambda: _answers(cluster))
    log = (cluster.workdir / primary / "pvc.log").read_text()
    assert f"API process {new} started" in log
    assert "the API process exited (exit code -9); starting it again in" in log


def _listed(cluster: LocalCluster, path: str) -> bool:
    request = urllib.request.Request(cluster.api_url + path)
    request.add_header("X-Api-Key", cluster.api_key)
    with urllib.request.urlopen(request, timeout=5) as reply:
        return bool(json.loads(reply.read()))


def _answers(cluster: LocalCluster) -> bool:
    try:
        return api_status(cluster, "/", timeout=1) == 200
    except OSError:
        return False


def test_the_api_process_dies_with_its_killed_daemon_and_its_successor_binds(cluster, observer):
    primary = cluster.wait_for_primary(observer, WAIT)
    name = next(name for name in cluster.names if name != primary)
    child = api_pid(cluster, name)
    cluster.kill(name)
    wait_for("the API process to end with its daemon", lambda: not _cmdline(child))
    cluster.start(name)
    new = api_pid(cluster, name)
    log = cluster.workdir / name / "pvc.log"
    wait_for("the new API process listening", lambda: log.read_text().count("API serving") == 2)
    assert new != child and _cmdline(new)  # still running: its port was free
    wait_for("the daemon to run", lambda: observer.read(("node.state.daemon", name)) == "run")


def test_after_a_failover_the_new_primary_answers_at_once(cluster, observer):
    old = cluster.wait_for_primary(observer, WAIT)
    warm = {name: api_pid(cluster, name) for name in cluster.names if name != old}
    cluster.kill(old)
    new = cluster.wait_for_primary(observer, WAIT, not_=old)
    wait_for("the floating address on the new primary", lambda: cluster.floating_holders() == [new])
    assert api_status(cluster, "/node") == 200  # the first request, no retry
    assert api_pid(cluster, new) == warm[new]  # served by the process started long before
    cluster.start(old)
    wait_for("the old primary back", lambda: observer.read(("node.state.daemon", old)) == "run")


def _supervised(code: str) -> ApiProcess:
    """An ApiProcess supervising a stand-in child: real processes, supervision alone."""
    supervisor = ApiProcess("/nonexistent.conf")
    supervisor.command = [sys.executable, "-c", code]
    supervisor.start()
    return supervisor


def test_a_child_that_exits_is_restarted_with_a_growing_delay(caplog):
    caplog.set_level(logging.INFO, logger="pvc.node.api")
    supervisor = _supervised("import sys; sys.exit(3)")
    try:
        wait_for("three restarts", lambda: caplog.text.count("starting it again") >= 3)
    finally:
        supervisor.stop()
    assert "the API process exited (exit code 3); starting it again in 0.5 s" in caplog.text
    assert "starting it again in 1 s" in caplog.text and "starting it again in 2 s" in caplog.text


def test_a_child_that_ignores_sigterm_is_killed_at_stop(caplog, tmp_path):
    ready = tmp_path / "ignoring"
    supervisor = _supervised(
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(600)"
    )
    wait_for("the child ignoring SIGTERM", ready.exists)
    pid = supervisor.pid
    supervisor.stop()
    assert not _cmdline(pid) and supervisor.pid is None
    assert f"the API process {pid} ignored SIGTERM" in caplog.text
