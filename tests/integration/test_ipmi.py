"""pvc.drivers.ipmi against real simulated BMCs (ipmi_sim through scripts/ipmi-bmc).

Each "node" here is a `sleep` process: its BMC's power-on command starts one (PID in the node's
folder) and its power-off command kills it; both append to the node's `events` file, so a test
sees exactly which commands the chassis ran.
"""

import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest

from pvc.drivers import ipmi
from tests.ipmi_bmcs import Bmcs, free_udp_port


def running(pid: int) -> bool:
    """Alive and not a zombie (orphans may wait a while for PID 1 to reap them here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not true within {timeout} s"
        time.sleep(0.05)


class Node:
    """A simulated node: a sleep process started and killed by its BMC's power commands."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True)
        self.on_cmd = f"sleep 300 & echo $! > {folder}/pid; echo on >> {folder}/events"
        self.off_cmd = f"kill -9 $(cat {folder}/pid); echo off >> {folder}/events"

    @property
    def events(self) -> list[str]:
        path = self.folder / "events"
        return path.read_text().split() if path.exists() else []

    @property
    def pid(self) -> int:
        return int((self.folder / "pid").read_text())

    def kill(self) -> None:
        """Kills the node's sleep by its PID, if it still runs (teardown)."""
        if (self.folder / "pid").exists() and running(self.pid):
            os.kill(self.pid, signal.SIGKILL)


@pytest.fixture
def bmcs(tmp_path):
    started = Bmcs(tmp_path / "bmcs")
    yield started
    started.stop()


@pytest.fixture
def make_node(tmp_path, bmcs):
    """make_node(name, power) -> (Node, Bmc); power "on" really starts the node first."""
    nodes: list[Node] = []

    def make(name: str, power: str = "on") -> tuple[Node, ipmi.Bmc]:
        node = Node(tmp_path / "nodes" / name)
        nodes.append(node)
        bmc = bmcs.start(name, node.on_cmd, node.off_cmd, power="off")
        if power == "on":
            bmc.power_on()
            wait_until(lambda: bmc.power_state() == "on")
        return node, bmc

    yield make
    for node in nodes:
        node.kill()


def test_power_on_and_off_run_the_node_commands(make_node, bmcs):
    node, bmc = make_node("node1", power="off")
    assert bmc.power_state() == "off"
    assert node.events == []

    bmc.power_on()
    wait_until(lambda: bmc.power_state() == "on")
    assert node.events == ["on"]
    pid = node.pid
    assert running(pid)

    bmc.power_off()
    wait_until(lambda: bmc.power_state() == "off")
    assert node.events == ["on", "off"]
    assert not running(pid)

    bmc.power_off()  # already off: accepted, and nothing runs
    wait_until(lambda: "power already 0" in bmcs.log("node1"))
    assert node.events == ["on", "off"]


def test_fence_powers_off_verifies_and_powers_on_again(make_node, bmcs):
    node, bmc = make_node("node1")
    other, _ = make_node("node2")  # a second BMC side by side, on its own port
    old_pid, other_pid = node.pid, other.pid

    result = ipmi.fence(bmc)

    assert result.fenced, (result, bmcs.log("node1"))
    assert result.reason == "fenced: power off verified, powered on again"
    assert 0 < result.seconds < 5
    times = [float(step.split(" s: ")[0]) for step in result.steps]
    assert times == sorted(times)
    assert [step.split(" s: ", 1)[1] for step in result.steps] == [
        "power status is on",
        "power off accepted",
        "power status is off",
        "power on accepted",
        "power status is on",
        result.reason,
    ]
    assert node.events == ["on", "off", "on"]
    assert not running(old_pid)
    assert node.pid != old_pid and running(node.pid)
    assert bmc.power_state() == "on"
    assert other.events == ["on"] and running(other_pid)  # the neighbour was not touched


def test_fence_of_a_chassis_already_off_powers_it_on(make_node):
    node, bmc = make_node("node1", power="off")

    result = ipmi.fence(bmc)

    assert result.fenced, result
    assert any("already off" in step for step in result.steps)
    assert node.events == ["on"]  # the off command never ran
    assert running(node.pid)


def test_when_off_runs_while_the_node_is_off(make_node, bmcs):
    node, bmc = make_node("node1")
    seen = []

    def when_off():
        seen.append((bmcs.power("node1"), list(node.events), running(node.pid)))

    result = ipmi.fence(bmc, when_off=when_off)

    assert result.fenced, (result, bmcs.log("node1"))
    assert seen == [("off", ["on", "off"], False)]
    assert node.events == ["on", "off", "on"]


def test_a_failing_when_off_is_reported_and_the_node_still_powered_on(make_node, bmcs):
    node, bmc = make_node("node1")

    def when_off():
        raise RuntimeError("no longer primary")

    result = ipmi.fence(bmc, when_off=when_off)

    explain = (result, bmcs.log("node1"))
    assert result.reason == (
        "fenced: power off verified, powered on again; "
        "the after-off action failed: no longer primary"
    ), explain
    assert result.fenced
    assert node.events == ["on", "off", "on"] and running(node.pid), explain


def test_wrong_password_fails_without_touching_the_node(make_node, bmcs):
    node, bmc = make_node("node1")
    wrong = dataclasses.replace(bmc, password="Not-The-Password-42")

    started = time.monotonic()
    result = ipmi.fence(wrong, when_off=lambda: pytest.fail("when_off ran"))

    assert not result.fenced
    assert "credentials" in result.reason
    assert time.monotonic() - started < 2
    assert node.events == ["on"] and running(node.pid)
    assert bmcs.power("node1") == "on"
    with pytest.raises(ipmi.IpmiError) as error:
        wrong.power_off()
    assert "credentials" in error.value.reason
    for text in (repr(result), str(result), *result.steps, str(error.value), repr(wrong)):
        assert wrong.password not in text and bmc.password not in text


def test_unreachable_bmc_fails_within_the_timeout():
    bmc = ipmi.Bmc("127.0.0.1", "admin", "Secret-Nobody-Hears", free_udp_port())

    started = time.monotonic()
    result = ipmi.fence(bmc, timeout=2)
    elapsed = time.monotonic() - started

    assert not result.fenced
    assert "unreachable" in result.reason
    assert elapsed < 3.5, elapsed
    assert bmc.password not in repr(result)


def test_fence_fails_when_the_power_does_not_go_off(bmcs, tmp_path):
    """A power-off command that fails leaves the chassis on: fence must not claim success."""
    bmc = bmcs.start("stuck", "true", "echo cannot power off; exit 1", power="on")

    result = ipmi.fence(bmc, verify_timeout=1)

    assert not result.fenced
    assert result.reason == "power did not turn off within 1 s"
    assert bmcs.power("stuck") == "on"
    assert "power off command failed" in bmcs.log("stuck")


def test_password_is_in_no_argv_or_environment(make_node, bmcs):
    node, bmc = make_node("node1")
    for pid in (bmcs.pid("node1"), node.pid):
        assert bmc.password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert bmc.password.encode() not in Path(f"/proc/{pid}/environ").read_bytes()


def test_stop_frees_the_port(bmcs):
    bmc = bmcs.start("node1", "true", "true")
    pid = bmcs.pid("node1")
    bmcs.stop("node1")
    assert not running(pid)
    with pytest.raises(ipmi.IpmiError, match="unreachable"):
        bmc.power_state(timeout=1)
