"""The `provision` job kind: builds a VM from a profile (pvc.ops.provision), on a node that
reaches Ceph.

Steps, each reported (Job.step) and each a point where a cancel is honoured:
1 verify: the plan again (the records as they are now), the pools' room, the filesystems'
  mkfs on this node, the install script parses and defines its class;
2 build the XML (pvc.ops.provision_xml): a new UUID, the NICs' MACs (template or random), the
  RBD disks;
3 define the VM in state `provision` (the node controllers leave it alone; user verbs are
  refused), with its profile, placed and its memory allocated as a start would: under
  `lock.provision`, with its MACs checked free there (two creates never give one MAC twice);
4 create the volumes (pvc.ops.storage_volume: new ones, or full copies of a source grown to
  the disk's size), so their records land in Zookeeper;
5 run the install script (pvc.node.install_runner) when the profile has one or a disk has a
  filesystem to prepare; the XML its create() returns replaces pvc's (checked as a define
  checks it);
6 start: state `start` (or `stop` with --no-start or --define-only, which skips step 5), the
  final XML, and the job's end, in ONE transaction guarded by the VM's state version, under
  `lock.provision` with the final XML's MACs (a script's may differ) checked free there.

What it makes is written to the job record (`made`: {vm, volumes}) BEFORE it is made (a VM's
UUID is new; a volume's name was checked free under its pool's lock), and taken off when an
attempt to make it failed. A failure or a cancel undoes what was made (the VM record first: a
volume a VM in `provision` uses counts as in use) and fails with the step and the reason;
what the undo could not remove stays in `made` (and the log). A job handed back after its
runner stopped or died is never resumed: its next run (a second attempt: the claim clears
`interrupted` but counts `attempts`) removes what `made` lists and fails, saying so. That run
is its node's when the daemon returns, or the primary's once the node is fenced
(pvc.ops.jobs.orphan_outcome: `undone_by_primary`).
"""

import contextlib
import logging
import re
import shutil
import time
import uuid as uuid_module
from collections.abc import Iterator
from typing import Any

from pvc.config import Config
from pvc.drivers import rbd_locks
from pvc.errors import Conflict, NotFound, PvcError
from pvc.node.jobs import Job, JobCancelled, JobInterrupted
from pvc.ops import (
    allocation,
    domain_xml,
    network_vms,
    provision_xml,
    provisioner_records,
    storage_ceph,
    storage_volume,
    vm_volumes,
)
from pvc.ops import provision as provision_ops
from pvc.ops import vm as vm_ops
from pvc.ops.placement import Policy
from pvc.ops.provision import Plan
from pvc.ops.sizes import format_size
from pvc.ops.storage_upload import WATCH_EXPIRY
from pvc.zk.locks import exclusive_lock
from pvc.zk.store import Store

log = logging.getLogger("pvc.node.provision")
STEPS = ("verify", "build the XML", "define the VM", "create volumes", "run the install script",
         "start")  # fmt: skip
TOTAL = len(STEPS)
LOCK_TIMEOUT = 30.0  # seconds for `lock.provision`: its holders check MACs and write, briefly
_FILESYSTEM = re.compile(r"[a-z0-9]{1,16}")


class StepFailed(PvcError):
    """A step failed: its number and name lead the message."""


class Provision:
    name = "provision"

    def __init__(self, view: Store, config: Config, policy: Policy):
        self.view = view
        self.config = config
        self.policy = policy

    def run(self, job: Job) -> Any:
        if job.record["attempts"] > 1:  # handed back: its runner stopped or died
            made = job.record.get("made") or {}
            left = Build(self, job).undo_recorded(made)
            raise PvcError(
                f"provisioning VM '{job.args['name']}' stopped half way (its runner stopped "
                f"or died while it ran); {_removed(made, left)}"
            )
        return Build(self, job).run()


def _removed(made: dict[str, Any], left: list[str]) -> str:
    what = [f"VM {made['vm']}"] if made.get("vm") else []
    what += [f"volume {v}" for v in made.get("volumes") or []]
    if left:
        return f"NOT removed (remove them by hand): {', '.join(left)}"
    return f"removed what it made: {', '.join(what)}" if what else "it had made nothing"


class Build:
    """One run of a provision job: its steps and its undo."""

    def __init__(self, kind: Provision, job: Job):
        self.view = kind.view
        self.config = kind.config
        self.policy = kind.policy
        self.job = job
        self.args = job.args
        self.made: dict[str, Any] = {"vm": None, "volumes": []}

    # --- the steps ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        try:
            found = self._step(1, self._verify)
            uuid, xml, nics = self._step(2, self._build_xml, found)
            node = self._step(3, self._define, found, uuid, xml, nics)
            self._step(4, self._create_volumes, found)
            if self.args["define_only"]:
                self.job.step(5, TOTAL, "run the install script: skipped (define only)")
            else:
                xml = self._step(5, self._install, found, uuid, xml, nics)
            return self._step(6, self._finish, found, uuid, xml, node)
        except BaseException as exc:
            left = self.undo_recorded(self.made)
            if left and isinstance(exc, PvcError):
                left_text = ", ".join(left)
                raise PvcError(
                    f"{exc.message}; NOT removed (remove by hand): {left_text}"
                ) from None
            raise

    def _step(self, number: int, action: Any, *args: Any) -> Any:
        self.job.step(number, TOTAL, STEPS[number - 1])
        try:
            return action(*args)
        except (JobCancelled, JobInterrupted):
            raise
        except PvcError as exc:
            raise StepFailed(
                f"step {number}/{TOTAL} ({STEPS[number - 1]}): {exc.message}"
            ) from None

    def _record(self, message: str, current: int) -> None:
        """Writes `made` into the job record (before the thing is made)."""
        self.job.record = self.job.record | {"made": self.made}
        self.job.step(current, TOTAL, message)

    def _verify(self) -> Plan:
        found = provision_ops.plan(
            self.view, self.args["name"], self.args["profile"], self.args["arguments"]
        )
        provision_ops.check_room(self.view, self.config, found)
        for disk in found.disks:
            filesystem = disk["filesystem"]
            if filesystem and not (_FILESYSTEM.fullmatch(filesystem)
                                   and shutil.which(f"mkfs.{filesystem}")):  # fmt: skip
                raise PvcError(
                    f"disk {disk['disk_id']}: filesystem {filesystem!r} is unknown here "
                    f"(no mkfs.{filesystem} on {self.config.node_name})"
                )
        if found.script is not None:
            provisioner_records.check_script(*found.script)
        return found

    def _build_xml(self, found: Plan) -> tuple[str, str, list[provision_xml.Nic]]:
        uuid = str(uuid_module.uuid4())
        taken = set(provision_xml.macs_in_use(self.view))
        macs = list(found.template_macs)
        while len(macs) < len(found.networks):
            macs.append(provision_xml.random_mac(taken | set(macs)))
        nics = [provision_xml.Nic(vni, mac) for vni, mac in zip(found.networks, macs, strict=True)]
        disks = [provision_xml.Disk(d["disk_id"], d["pool"], d["volume"]) for d in found.disks]
        directory = self.config.get("provisioner.console_log_directory")
        xml = provision_xml.build(
            name=found.name, uuid=uuid, vcpus=found.vcpus, memory=found.memory, disks=disks,
            nics=nics, system=found.system, domain_type=self.config.get("provisioner.domain_type"),
            console_log=f"{directory}/{uuid}.log",
            description=f"provisioned by pvc from profile {found.profile}",
        )  # fmt: skip
        return uuid, xml, nics

    @contextlib.contextmanager
    def _free_macs(
        self, nics: list[provision_xml.Nic], skip_uuid: str | None = None
    ) -> Iterator[None]:
        """Holds `lock.provision` with `nics`' MACs checked free on the newest records: a
        create's MAC check and the write of those MACs (steps 3 and 6) take turns with every
        other create's, cluster wide."""
        with exclusive_lock(self.view, "lock.provision", LOCK_TIMEOUT):
            self.view.catch_up()
            provision_xml.require_free_macs(self.view, nics, skip_uuid=skip_uuid)
            yield

    def _define(self, found: Plan, uuid: str, xml: str, nics: list[provision_xml.Nic]) -> str:
        with self._free_macs(nics):
            return self._define_locked(found, uuid, xml)

    def _define_locked(self, found: Plan, uuid: str, xml: str) -> str:
        spec = domain_xml.checked(xml)
        system = found.system
        values, expect, node = vm_ops.definition(
            self.view, self.policy, spec, xml, node=None,
            limit=list(system.get("node_limit") or []) or None,
            selector=system.get("node_selector"), autostart=bool(system.get("node_autostart")),
            migration_method=system.get("migration_method") or "live", tags=None,
        )  # fmt: skip
        values[("domain.state", uuid)] = vm_ops.PROVISIONING
        values[("domain.profile", uuid)] = found.profile
        self.made["vm"] = uuid
        self._record(f"{STEPS[2]}: {found.name} ({uuid}) on {node}", 3)
        try:
            allocation.allocate(self.view, node, values, expect,
                                lambda claim: claim.check(self.policy, spec.memory))  # fmt: skip
        except BaseException:
            self.made["vm"] = None
            raise
        return node

    def _create_volumes(self, found: Plan) -> None:
        for disk in found.disks:
            pool, volume, size = disk["pool"], disk["volume"], disk["size"]
            label = f"{pool}/{volume}"
            self.made["volumes"].append(label)
            self._record(f"{STEPS[3]}: {label}", 4)
            try:
                if disk["source_volume"]:
                    storage_volume.clone(
                        self.view, self.config, pool, disk["source_volume"], volume
                    )
                else:
                    storage_volume.add(self.view, self.config, pool, volume, f"{size}B")
            except BaseException:
                self.made["volumes"].remove(label)  # its own undo removed it, or not ours
                raise
            stats = self.view.read(("volume.stats", pool, volume)) or {}
            if disk["source_volume"] and size > int(stats.get("size") or 0):
                storage_volume.resize(self.view, self.config, pool, volume, f"{size}B")

    def _install(self, found: Plan, uuid: str, xml: str, nics: list[provision_xml.Nic]) -> str:
        if found.script is None and not any(d["filesystem"] for d in found.disks):
            return xml
        from pvc.node import install_runner

        name, text = found.script or ("(base)", provision_ops.BASE_SCRIPT)
        context = {
            "vm_name": found.name, "vm_uuid": uuid, "profile": found.profile,
            "arguments": found.arguments, "disks": found.disks, "xml": xml,
            "networks": [{"vni": n.vni, "mac": n.mac, "bridge": n.bridge} for n in nics],
        }  # fmt: skip
        try:
            new_xml = install_runner.run(
                name,
                text,
                context,
                self.config,
                self._on_phase,
                self._cancelled,
                self.config.get("provisioner.script_timeout"),
            )
        finally:  # a script stopped by a cancel (or the daemon stopping): the job ends so
            self.job.check()
        if new_xml == xml:
            return xml
        spec = domain_xml.checked(new_xml)
        if (spec.name, spec.uuid) != (found.name, uuid):
            raise PvcError(
                f"install script '{name}': create() returned the XML of '{spec.name}' "
                f"({spec.uuid}), not of '{found.name}' ({uuid})"
            )
        vm_volumes.require_existing(self.view, spec.volumes)
        network_vms.require_networks(self.view, new_xml)
        return new_xml

    def _on_phase(self, phase: str) -> None:
        with contextlib.suppress(JobCancelled, JobInterrupted):  # `_cancelled` tells the runner
            self.job.step(5, TOTAL, f"{STEPS[4]}: {phase}")

    def _cancelled(self) -> bool:
        try:
            self.job.check()
        except (JobCancelled, JobInterrupted):
            return True
        return False

    def _finish(self, found: Plan, uuid: str, xml: str, node: str) -> dict[str, Any]:
        """Step 6: the final XML's MACs free (an install script's create() may have changed
        them), then the VM's final state and XML and the job's end, in one transaction."""
        # a NIC off pvc's networks: VNI 0, which has no reservations
        nics = [provision_xml.Nic(network_vms.bridge_vni(nic.bridge) or 0, nic.mac)
                for nic in domain_xml.interfaces(xml) if nic.mac]  # fmt: skip
        with self._free_macs(nics, skip_uuid=uuid):
            return self._finish_locked(found, uuid, xml, node)

    def _finish_locked(self, found: Plan, uuid: str, xml: str, node: str) -> dict[str, Any]:
        state, version = self.view.read_versioned(("domain.state", uuid))
        if state != vm_ops.PROVISIONING:
            raise PvcError(f"VM '{found.name}' left state provision meanwhile (now {state})")
        off = self.args["define_only"] or not self.args["start"]
        final = "stop" if off else "start"
        spec = domain_xml.parse(xml)
        values = {
            ("domain.state", uuid): final,
            ("domain.xml", uuid): xml,
            ("domain.memory", uuid): spec.memory,
            ("domain.vcpus", uuid): spec.vcpus,
        }
        volumes = [d["pool"] + "/" + d["volume"] for d in found.disks]
        size = sum(d["size"] for d in found.disks)
        how = "defined, stopped" if off else f"starting on {node}"
        result = {"name": found.name, "uuid": uuid, "node": node, "state": final,
                  "volumes": volumes,
                  "message": f"VM '{found.name}' {how} ({len(volumes)} volume(s), "
                             f"{format_size(size)})"}  # fmt: skip
        # the record ends listing nothing; self.made stays for the undo if this write fails
        self.job.record = self.job.record | {"made": {"vm": None, "volumes": []}}
        self.job.done(result, also=values, expect={("domain.state", uuid): version})
        return result

    # --- undo ---------------------------------------------------------------------------------

    def undo_recorded(self, made: dict[str, Any]) -> list[str]:
        """Removes what `made` lists (the VM first), whatever fails; what could not be removed
        stays in the job's `made` (written as the job ends) and is logged; it is named."""
        kept: dict[str, Any] = {"vm": None, "volumes": []}
        left = []
        uuid = made.get("vm")
        if uuid:
            try:
                self._remove_vm(uuid)
            except Exception as exc:  # any kind: reported in the job's record and the log
                kept["vm"] = uuid
                left.append(f"VM {uuid} ({_reason(exc)})")
        for label in reversed(made.get("volumes") or []):
            pool, _, volume = label.partition("/")
            try:
                self._remove_volume(pool, volume)
            except Exception as exc:  # any kind: reported in the job's record and the log
                kept["volumes"].insert(0, label)
                left.append(f"volume {label} ({_reason(exc)})")
        self.made = kept
        self.job.record = self.job.record | {"made": kept}
        if left:
            log.error("provision of %s (task %s): NOT removed (remove by hand): %s",
                      self.args["name"], self.job.id, ", ".join(left))  # fmt: skip
        return left

    def _remove_vm(self, uuid: str) -> None:
        """Removes the VM's record if it is still being provisioned (a VM a finished job left
        is the user's)."""
        self.view.catch_up()
        name, (state, version) = (
            self.view.read(("domain", uuid)),
            self.view.read_versioned(("domain.state", uuid)),
        )
        if name is None or state != vm_ops.PROVISIONING:
            return
        delete = [("domain", uuid), ("name.domain", name)]
        self.view.write({}, delete=delete, expect={("domain.state", uuid): version})
        log.info("provision of %s: VM record %s removed", name, uuid)

    def _remove_volume(self, pool: str, volume: str) -> None:
        """Removes a volume this job made: its image (a dead runner's lock on it broken
        first; while Ceph says it is busy, as a killed copy's watch lasts until the OSDs time
        it out, again, up to WATCH_EXPIRY) and its records, whichever of them exist."""
        storage_ceph.undo(rbd_locks.break_locks, storage_ceph.connection(self.config), pool,
                          volume)  # fmt: skip
        deadline = time.monotonic() + WATCH_EXPIRY
        while True:
            try:
                if self.view.exists(("volume", pool, volume)):
                    storage_volume.remove(self.view, self.config, pool, volume, force=True)
                else:  # a copy its runner died in: an image without records
                    with storage_ceph.refusals(storage_volume.label(pool, volume)):
                        storage_ceph.images(self.config).remove(pool, volume)
                log.info("provision: volume %s/%s removed", pool, volume)
                return
            except NotFound:
                return
            except Conflict:
                if time.monotonic() > deadline:
                    raise
            time.sleep(1.0)


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, PvcError) else repr(exc)


def kinds(view: Store, config: Config, policy: Policy) -> dict[str, Any]:
    """The provision kind, on a node that reaches Ceph."""
    return {Provision.name: Provision(view, config, policy)} if config.get("ceph.enabled") else {}
