"""The one seam that runs this node's OSD daemons (contract: contracts.OsdProcessDriver).

Where systemd runs (/run/systemd/system exists), OSDs are its `ceph-osd@N` units, as Ceph's
packages intend: they outlive the node daemon, and systemd restarts them. Their CRUSH location
(the node's host bucket) is set in the cluster's configuration database (`crush_location` of
osd.N), which the unit's ceph-osd reads when it starts.

Without systemd (containers, these test machines), the node daemon supervises `ceph-osd -f
--cluster ceph -i N --setuser ceph --setgroup ceph --crush-location 'root=default host=NODE'`
itself, with CEPH_CONF set, listening on the address this node reaches Ceph from (the node's
storage address: a node in a network namespace is not on the host's public network; a separate
cluster network is not supported). The choice: the OSDs are the daemon's children and stop with
it (`stop_all` at the daemon's shutdown), so a stopped node daemon leaves no unsupervised OSD
behind; the OSD controller (pvc.node.osds) restarts a dead one with a backoff and starts them
again when the daemon returns. A daemon killed outright leaves its OSDs running: the next one
finds each by Ceph's pid file (`pid_file` of osd.N) and adopts it instead of starting another.
"""

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from pvc.drivers.ceph_volume import COMMAND_TIMEOUT, run
from pvc.drivers.contracts import CephDriver, DeviceError, OsdProcessDriver

log = logging.getLogger("pvc.drivers.osd_process")
STOP_TIMEOUT = 30.0
SYSTEMD_MARK = Path("/run/systemd/system")


def crush_location(host: str) -> str:
    return f"root=default host={host}"


class SupervisedOsds:
    """ceph-osd processes as the node daemon's children (see the module docstring)."""

    def __init__(self, config_file: str):
        self.config_file = config_file
        self._children: dict[int, subprocess.Popen] = {}
        self._adopted: dict[int, int] = {}  # OSD id -> pid of a process an earlier daemon left

    def start(self, osd_id: int, host: str, address: str) -> None:
        if self.running(osd_id):
            return
        argv = ["ceph-osd", "-f", "--cluster", "ceph", "-i", str(osd_id),
                "--setuser", "ceph", "--setgroup", "ceph",
                "--crush-location", crush_location(host),
                "--public-addr", address, "--cluster-addr", address]  # fmt: skip
        try:
            process = subprocess.Popen(
                argv,
                env={**os.environ, "CEPH_CONF": self.config_file},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a signal to the daemon's group is not the OSD's
            )
        except OSError as exc:
            raise DeviceError(f"cannot start ceph-osd for osd.{osd_id}: {exc.strerror}") from None
        self._children[osd_id] = process
        log.info("osd.%d: started ceph-osd (pid %d) in CRUSH host %s", osd_id, process.pid, host)

    def running(self, osd_id: int) -> bool:
        child = self._children.get(osd_id)
        if child is not None:
            if child.poll() is None:
                return True
            log.warning("osd.%d: ceph-osd exited with %s", osd_id, child.returncode)
            del self._children[osd_id]
        pid = self._adopted.get(osd_id) or self._left_behind(osd_id)
        if pid and _is_osd(pid, osd_id):
            if osd_id not in self._adopted:
                log.info("osd.%d: adopted the running ceph-osd (pid %d)", osd_id, pid)
            self._adopted[osd_id] = pid
            return True
        self._adopted.pop(osd_id, None)
        return False

    def stop(self, osd_id: int) -> None:
        child = self._children.pop(osd_id, None)
        if child is not None:
            child.terminate()
            try:
                child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                try:
                    child.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:  # e.g. stuck in D state on a dead disk
                    raise DeviceError(_unkillable(osd_id, child.pid)) from None
            log.info("osd.%d: stopped", osd_id)
        pid = self._adopted.pop(osd_id, None) or self._left_behind(osd_id)
        if pid and _is_osd(pid, osd_id):
            _end(pid, osd_id)

    def stop_all(self) -> None:
        for osd_id in sorted({*self._children, *self._adopted}):
            try:
                self.stop(osd_id)
            except (OSError, DeviceError) as exc:
                log.warning("osd.%d: could not stop it: %s", osd_id, exc)

    def _left_behind(self, osd_id: int) -> int | None:
        """The pid in Ceph's pid file of osd.N, if any."""
        try:
            path = run(
                ["ceph-conf", "-c", self.config_file, "--name", f"osd.{osd_id}",
                 "--show-config-value", "pid_file"],
                COMMAND_TIMEOUT,
            ).strip()  # fmt: skip
            return int(Path(path).read_text().strip()) if path else None
        except (OSError, ValueError, DeviceError):
            return None


def _is_osd(pid: int, osd_id: int) -> bool:
    """Whether `pid` is a live ceph-osd of osd.N (not a reused pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z" or not argv or not argv[0].endswith(b"ceph-osd"):
        return False
    wanted = str(osd_id).encode()
    return any(a in (b"-i", b"--id") and b == wanted for a, b in zip(argv, argv[1:], strict=False))


def _end(pid: int, osd_id: int, timeout: float = STOP_TIMEOUT) -> None:
    """Ends a process that is not our child: SIGTERM, then SIGKILL after `timeout`; a
    DeviceError if it still lives `timeout` after that (a process in D state ignores SIGKILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while _is_osd(pid, osd_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _is_osd(pid, osd_id):
            break
    else:
        raise DeviceError(_unkillable(osd_id, pid))
    log.info("osd.%d: stopped (pid %d)", osd_id, pid)


def _unkillable(osd_id: int, pid: int) -> str:
    return f"osd.{osd_id}: ceph-osd (pid {pid}) did not end after SIGKILL (stuck in the kernel?)"


class SystemdOsds:
    """ceph-osd@N units of systemd (see the module docstring)."""

    def __init__(self, ceph: CephDriver):
        self.ceph = ceph

    def start(self, osd_id: int, host: str, address: str) -> None:
        where = {"prefix": "config set", "who": f"osd.{osd_id}", "name": "crush_location"}
        self.ceph.mon_command(where | {"value": crush_location(host)})
        run(["systemctl", "enable", "--now", f"ceph-osd@{osd_id}"], COMMAND_TIMEOUT)

    def stop(self, osd_id: int) -> None:
        run(["systemctl", "disable", "--now", f"ceph-osd@{osd_id}"], STOP_TIMEOUT + 10)

    def running(self, osd_id: int) -> bool:
        """Whether its unit is active; True when systemd does not answer in time (better
        no second start than a start over a running OSD: the next look asks again)."""
        try:
            result = subprocess.run(
                ["systemctl", "is-active", "--quiet", f"ceph-osd@{osd_id}"],
                timeout=COMMAND_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            log.warning("osd.%d: systemctl is-active did not answer in time", osd_id)
            return True
        except OSError as exc:
            raise DeviceError(f"cannot run systemctl: {exc.strerror}") from None
        return result.returncode == 0

    def stop_all(self) -> None:
        pass  # systemd's units outlive the node daemon


def for_host(config_file: str, ceph: CephDriver) -> OsdProcessDriver:
    """systemd's units where systemd runs, supervised processes otherwise."""
    if SYSTEMD_MARK.is_dir():
        return SystemdOsds(ceph)
    return SupervisedOsds(config_file)
