"""The job kinds `osd_add` and `osd_remove`, run by the daemon of the OSD's node (pvc.node.jobs)
for the jobs `pvc storage osd add|remove` create (pvc.ops.storage_osd).

osd_add: check the disk is free, prepare it (ceph-volume), write its records (`osd`,
`osd.node`, `osd.device`, `osd.fsid`; refused if a record of that id was written meanwhile),
activate it, start the OSD in this node's CRUSH host, wait until Ceph says it is up, set its
CRUSH weight if one was given. Any failure after the check, a cancel, or the daemon stopping
undoes it: the OSD stopped, purged from Ceph (id, key, CRUSH item), its folder unmounted, the
disk wiped, then its records deleted. Not resumable: a runner that dies after the records
leaves a recorded OSD (the next daemon starts or adopts it; `osd remove` removes it and wipes
its disk); one that dies inside ceph-volume's prepare, before Ceph's answer, can still leave
an OSD id pvc has no record of.

osd_remove (resumable: each step accepts what is already done): mark it out, wait until its
data has moved (no PG has it in its up or acting set, Ceph says it is safe to destroy; only
this OSD's PGs count; progress: its PGs left and moving, and "stuck" when they stop changing),
stop it, purge it, remove this node's CRUSH host bucket if now empty, unmount its folder, wipe
its disk (only if the disk carries this OSD's bluestore label: never a disk without one), and
delete its records in the transaction that ends the job. A cancel while draining marks it in
again.
"""

import errno
import logging
import time
from typing import Any

from pvc.drivers.ceph import CephError
from pvc.drivers.ceph_osds import MOVING, dumped_osd, pgs_of, purge, stuck_states
from pvc.drivers.contracts import CephDriver, DeviceError, OsdDeviceDriver, OsdProcessDriver
from pvc.errors import ConcurrentChange, PvcError
from pvc.node.jobs import Job, JobCancelled
from pvc.node.osds import OsdController

log = logging.getLogger("pvc.node.osd_jobs")
UP_TIMEOUT = 120.0
POLL_SECONDS = 0.5
NOT_YET = (errno.EBUSY, errno.EAGAIN)  # safe-to-destroy's "not yet"
STUCK_AFTER = 60.0  # seconds without a change before a drain's progress says it is stuck


class OsdWork:
    """What both kinds share: this node's OSD controller, and through it Ceph, the disks and
    the OSD processes."""

    def __init__(self, name: str, controller: OsdController):
        self.node = name
        self.controller = controller
        self.ceph: CephDriver = controller.ceph
        self.devices: OsdDeviceDriver = controller.devices
        self.processes: OsdProcessDriver = controller.processes

    def ceph_has(self, osd_id: int) -> dict[str, Any] | None:
        return dumped_osd(self.ceph, osd_id)

    def purge(self, osd_id: int) -> None:
        """Stops the OSD and removes it from Ceph, and this node's host bucket if empty."""
        self.processes.stop(osd_id)
        purge(self.ceph, osd_id, self.node)
        self.devices.deactivate(osd_id)


class OsdAdd(OsdWork):
    name = "osd_add"
    steps = 5

    def run(self, job: Job) -> None:
        device, weight = job.args["device"], job.args.get("weight")
        job.step(1, self.steps, f"checking {device}")
        self.devices.check_free(device)
        osd_id: int | None = None
        recorded = False
        try:
            job.step(2, self.steps, f"preparing {device} (ceph-volume raw prepare)")
            prepared = self.devices.prepare(device)
            osd_id = prepared.osd_id
            with self.controller.holding(osd_id):
                recorded = self._record(osd_id, device, prepared.osd_uuid)
                job.step(3, self.steps, f"activating osd.{osd_id}")
                self.devices.activate(device, osd_id, prepared.osd_uuid)
                job.step(4, self.steps, f"starting osd.{osd_id}")
                self.processes.start(osd_id, self.node, self.controller.address())
                self._wait_up(job, osd_id)
                if weight is not None:
                    name = f"osd.{osd_id}"
                    self.ceph.mon_command(
                        {"prefix": "osd crush reweight", "name": name, "weight": float(weight)}
                    )
                job.done({"osd": osd_id, "node": self.node, "device": device})
        except BaseException:
            self._undo(device, osd_id, recorded)
            raise

    def _record(self, osd_id: int, device: str, fsid: str) -> bool:
        """Writes the OSD's records as soon as Ceph has it (before it is started): a runner
        that dies from here on leaves an OSD pvc knows (its daemon starts or adopts it again;
        `osd remove` removes it and wipes the disk), never one pvc calls not its own. True;
        PvcError if a record of that id was written meanwhile."""
        key = str(osd_id)
        records = {
            ("osd", key): self.node,
            ("osd.node", key): self.node,
            ("osd.device", key): device,
            ("osd.fsid", key): fsid,
        }
        try:
            self.controller.view.write(records, expect={("osd", key): -1})
        except ConcurrentChange as exc:
            raise PvcError(f"osd.{osd_id} could not be recorded: {exc.message}") from None
        return True

    def _wait_up(self, job: Job, osd_id: int) -> None:
        job.step(5, self.steps, f"waiting for osd.{osd_id} to come up")
        deadline = time.monotonic() + UP_TIMEOUT
        while True:
            osd = self.ceph_has(osd_id)
            if osd is not None and osd["up"]:
                return
            if not self.processes.running(osd_id):
                raise DeviceError(f"osd.{osd_id} exited as it started (see its Ceph log)")
            if time.monotonic() > deadline:
                raise DeviceError(f"osd.{osd_id} did not come up within {UP_TIMEOUT:g} s")
            job.check()
            time.sleep(POLL_SECONDS)

    def _undo(self, device: str, osd_id: int | None, recorded: bool) -> None:
        """Takes back whatever the add made (the disk was free before it began); its records
        last, once the OSD is gone (if that fails, they stay: `osd remove` can finish it)."""
        try:
            if osd_id is None:
                label = self.devices.label(device) or {}
                osd_id = int(label["whoami"]) if "whoami" in label else None
            if osd_id is not None:
                self.purge(osd_id)
            self.devices.zap(device)
            if recorded:
                self.controller.view.write({}, delete=[("osd", str(osd_id))])
            log.info("undid the add of %s (osd.%s)", device, osd_id)
        except Exception as exc:  # report, but the job's own error is what matters
            log.error("could not undo the add of %s (osd.%s): %s", device, osd_id, exc)


class OsdRemove(OsdWork):
    name = "osd_remove"

    def run(self, job: Job) -> dict[str, Any]:
        osd_id = int(job.args["osd"])
        key = str(osd_id)
        device = job.args.get("device")
        fsid = self.controller.view.read(("osd.fsid", key))
        with self.controller.holding(osd_id):
            if self.ceph_has(osd_id) is not None:
                job.step(0, 1, f"marking osd.{osd_id} out")
                self.ceph.mon_command({"prefix": "osd out", "ids": [key]})
                try:
                    self._drain(job, osd_id)
                except JobCancelled:
                    self.ceph.mon_command({"prefix": "osd in", "ids": [key]})
                    raise
            total = job.record["progress"]["total"] or 1
            job.step(total, total, f"stopping and purging osd.{osd_id}")
            self.purge(osd_id)
            wiped = self._wipe(device, fsid)
            result = {"osd": osd_id, "node": self.node, "device": device, "wiped": wiped}
            job.done(result, delete=[("osd", key)])  # held until its records are gone
        return result

    def _safe(self, osd_id: int) -> bool:
        try:
            answer = self.ceph.command("osd safe-to-destroy", ids=[str(osd_id)])
        except CephError as exc:
            if exc.errno in NOT_YET:
                return False
            raise
        return osd_id in (answer or {}).get("safe_to_destroy", [])

    def _drain(self, job: Job, osd_id: int) -> None:
        """Waits until no PG maps to the OSD (up or acting: a PG of one copy still recovering
        from it counts) and Ceph says it may be destroyed. Only this OSD's PGs count. Progress:
        its PGs left and how many move; one that has not changed for STUCK_AFTER seconds, or
        PGs in a state waiting will not clear (backfill_toofull, incomplete, ...), is reported
        stuck in the message; the drain goes on waiting, cancellable."""
        total, last, since = 1, None, time.monotonic()
        while True:
            pgs = pgs_of(self.ceph, osd_id)
            if not pgs and self._safe(osd_id):
                return
            moving = sum(any(w in pg.get("state", "") for w in MOVING) for pg in pgs)
            stuck = stuck_states(pgs)
            if (len(pgs), moving, stuck) != last:
                last, since = (len(pgs), moving, stuck), time.monotonic()
            total = max(total, len(pgs))
            message = f"draining osd.{osd_id}: {len(pgs)} PGs left on it, {moving} moving"
            if stuck:
                message += f"; stuck: {', '.join(stuck)} (cancel to put it back in)"
            elif time.monotonic() - since > STUCK_AFTER:
                message += f"; no change for {STUCK_AFTER:g} s (cancel to put it back in)"
            if message != job.record["progress"].get("message"):
                job.step(total - len(pgs), total, message)
            job.check()
            time.sleep(POLL_SECONDS)

    def _wipe(self, device: str | None, fsid: str | None) -> bool:
        """Wipes the disk only if it still carries this OSD's bluestore label (osd_uuid ==
        the recorded fsid): a device name may now be another disk (names move across a
        reboot), with a filesystem, LVM, or nothing readable; False then. A resumed job whose
        wipe was done finds no label and does not wipe again."""
        if not device or not fsid:
            return False
        try:
            label = self.devices.label(device)
            if label is None or label.get("osd_uuid") != fsid:
                log.warning("%s does not carry this OSD's label: not wiping it", device)
                return False
            self.devices.zap(device)
            return True
        except DeviceError as exc:
            log.warning("could not wipe %s: %s", device, exc.message)
            return False


def kinds(name: str, controller: OsdController) -> dict[str, OsdWork]:
    """The OSD kinds of this node's job runner."""
    return {kind.name: kind(name, controller) for kind in (OsdAdd, OsdRemove)}
