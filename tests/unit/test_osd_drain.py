"""A drain counts only the PGs mapped to its OSD (pvc.drivers.ceph_osds, on `pg dump
pgs_brief` JSON in the shape Ceph 16.2.15 answered, recorded from the session's Ceph: entries
like {"pgid": "2.7", "state": "active+clean", "up": [0], "acting": [0], ...}), and reports a
stuck drain in its progress instead of waiting silently; a remove wipes only its own disk."""

import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from pvc.drivers import osd_process
from pvc.drivers.ceph_osds import on_osd, pg_stats, stuck_states
from pvc.drivers.contracts import DeviceError
from pvc.node import osd_jobs
from pvc.node.jobs import JobCancelled


def pg(pgid: str, state: str, up: list[int], acting: list[int]) -> dict[str, Any]:
    return {"pgid": pgid, "state": state, "up": up, "acting": acting,
            "up_primary": up[0], "acting_primary": acting[0]}  # fmt: skip


RECORDED = {"pg_ready": True, "pg_stats": [
    pg("2.7", "active+clean", [0], [0]),
    pg("2.6", "active+clean", [0], [0]),
    pg("2.5", "active+clean", [0], [0]),
]}  # fmt: skip


def test_only_pgs_whose_up_or_acting_set_holds_the_osd_count():
    stats = pg_stats(RECORDED) + [
        pg("3.0", "active+remapped+backfilling", [0], [1]),  # still acting on osd.1
        pg("3.1", "active+undersized+degraded+peered", [2], [2]),  # elsewhere: not osd.1's
        pg("3.2", "active+remapped+backfill_toofull", [2], [3]),  # elsewhere
    ]
    assert [p["pgid"] for p in on_osd(stats, 1)] == ["3.0"]
    assert len(on_osd(stats, 0)) == 4
    assert on_osd(stats, 9) == []
    assert pg_stats([pg("1.0", "active+clean", [0], [0])])[0]["pgid"] == "1.0"  # a bare list
    assert pg_stats({}) == []


def test_states_that_waiting_will_not_clear_are_named():
    stats = [pg("3.2", "active+remapped+backfill_toofull", [2], [1]),
             pg("3.3", "active+remapped+backfilling", [2], [1])]  # fmt: skip
    assert stuck_states(stats) == ["active+remapped+backfill_toofull"]
    assert stuck_states(pg_stats(RECORDED)) == []


class FakeJob:
    def __init__(self, cancel_after: int):
        self.record: dict[str, Any] = {"progress": {"current": 0, "total": 1, "message": ""}}
        self.messages: list[str] = []
        self.checks = cancel_after

    def step(self, current: int, total: int, message: str) -> None:
        self.record["progress"] = {"current": current, "total": total, "message": message}
        self.messages.append(message)

    def check(self) -> None:
        self.checks -= 1
        if self.checks < 0:
            raise JobCancelled()


class FakeCeph:
    def __init__(self, stats: list[dict[str, Any]]):
        self.stats = stats

    def command(self, prefix: str, **arguments: Any) -> Any:
        if prefix == "pg dump":
            assert arguments == {"dumpcontents": ["pgs_brief"]}
            return {"pg_ready": True, "pg_stats": self.stats}
        assert prefix == "osd safe-to-destroy"
        return {"safe_to_destroy": [1]}


def remover(ceph: Any = None, devices: Any = None) -> osd_jobs.OsdRemove:
    controller = SimpleNamespace(ceph=ceph, devices=devices, processes=None)
    return osd_jobs.OsdRemove("node1", controller)  # type: ignore[arg-type]


def test_a_drain_ignores_pgs_moving_elsewhere(monkeypatch):
    monkeypatch.setattr(osd_jobs, "POLL_SECONDS", 0)
    elsewhere = [pg("3.1", "active+undersized+degraded+peered", [2], [2]),
                 pg("3.2", "active+remapped+backfill_toofull", [2], [3])]  # fmt: skip
    remover(FakeCeph(elsewhere))._drain(FakeJob(0), 1)  # returns at once: nothing is osd.1's


def test_a_stuck_drain_says_so_and_stays_cancellable(monkeypatch):
    monkeypatch.setattr(osd_jobs, "POLL_SECONDS", 0)
    monkeypatch.setattr(osd_jobs, "STUCK_AFTER", 0)
    toofull = [pg("3.2", "active+remapped+backfill_toofull", [2], [1])]
    job = FakeJob(3)
    with pytest.raises(JobCancelled):
        remover(FakeCeph(toofull))._drain(job, 1)
    assert "1 PGs left on it, 1 moving; stuck: active+remapped+backfill_toofull" in job.messages[0]
    slow = [pg("3.3", "active+remapped+backfilling", [2], [1])]
    job = FakeJob(3)
    with pytest.raises(JobCancelled):
        remover(FakeCeph(slow))._drain(job, 1)
    assert "no change for 0 s" in job.messages[-1]


class FakeDevices:
    def __init__(self, label: dict[str, Any] | None):
        self._label = label
        self.zapped: list[str] = []

    def label(self, device: str) -> dict[str, Any] | None:
        return self._label

    def zap(self, device: str) -> None:
        self.zapped.append(device)


@pytest.mark.parametrize(
    "label",
    [None, {"osd_uuid": "another"}],  # ext4/LVM/unreadable (no label), another OSD's disk
)
def test_a_remove_wipes_no_disk_without_this_osds_label(label):
    devices = FakeDevices(label)
    assert remover(devices=devices)._wipe("/dev/sdx", "u-1") is False
    assert devices.zapped == []


def test_a_remove_wipes_its_own_disk_and_nothing_without_a_recorded_fsid():
    devices = FakeDevices({"osd_uuid": "u-1"})
    assert remover(devices=devices)._wipe("/dev/sdx", None) is False
    assert remover(devices=devices)._wipe("/dev/sdx", "u-1") is True
    assert devices.zapped == ["/dev/sdx"]


# --- stopping OSD processes is bounded ------------------------------------------------------


def test_ending_a_process_that_ignores_sigterm_kills_it():
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    command = f'exec -a ceph-osd {sys.executable} -c "{script}" -i 7'
    process = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        osd_process._end(process.pid, 7, timeout=0.5)
        process.wait(5)
        assert process.returncode == -9
    finally:
        process.kill()
        process.wait(5)


def test_a_process_that_survives_sigkill_is_an_error_not_a_hang(monkeypatch):
    monkeypatch.setattr(osd_process, "_is_osd", lambda pid, osd_id: True)
    monkeypatch.setattr(osd_process.os, "kill", lambda pid, sig: None)  # as if in D state
    with pytest.raises(DeviceError, match="did not end after SIGKILL"):
        osd_process._end(12345, 7, timeout=0.2)


class StuckChild:
    pid = 4242

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float) -> None:
        raise subprocess.TimeoutExpired("ceph-osd", timeout)


def test_stop_all_survives_a_child_that_will_not_die(monkeypatch):
    monkeypatch.setattr(osd_process, "STOP_TIMEOUT", 0.1)
    osds = osd_process.SupervisedOsds("/nonexistent/ceph.conf")
    osds._children[3] = StuckChild()  # type: ignore[assignment]
    with pytest.raises(DeviceError, match="did not end after SIGKILL"):
        osds.stop(3)
    osds._children[3] = StuckChild()  # type: ignore[assignment]
    osds.stop_all()  # logged, not raised


def test_systemd_running_does_not_raise_a_timeout(monkeypatch):
    def slow(*args: Any, **kwargs: Any) -> Any:
        raise subprocess.TimeoutExpired("systemctl", 1)

    monkeypatch.setattr(osd_process.subprocess, "run", slow)
    assert osd_process.SystemdOsds(None).running(3) is True  # type: ignore[arg-type]
