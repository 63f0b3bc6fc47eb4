"""Jobs: operations longer than a request (flush, unflush; later uploads, OSD adds, provisioning),
each a record in Zookeeper (`/jobs/<id>`) that a runner in a node daemon claims and carries out.

A record: `id`, `kind`, `args` (never secrets: every client can read them), `runner` (the node
whose daemon runs it, or `primary`: whichever node is primary), `state` (queued -> running ->
done | failed | cancelled), `progress` {current, total, message}, `created`, `started`,
`finished`, `updated` (time of its last change), `result`, `error`, `attempts`, `interrupted`
(why its last attempt stopped half way, for a job handed back to the queue).
Ids sort by creation: `<UTC date>-<time>.<microseconds>-<kind>-<random>`.

Claim: a runner creates the ephemeral `/jobs/<id>/claim` (its node and session), then writes
`running` guarded by the record's version; only one runner can do both. Every later write of a
running job is guarded by the record's version AND the claim's presence, so a runner whose
session ended (its claim gone) can no longer touch the job.

A runner's death (a running job without a claim) is settled by the primary's runner
(pvc.node.jobs), with `orphan_outcome`: a job of an idempotent kind goes back to `queued` and
is resumed from the start by its runner (a node's daemon when it returns); any other job ends
`failed` with the reason. A queued job bound to a node that the fence monitor declared dead
(dead, fenced, fence-failed) fails with that reason; a node stopped cleanly keeps its queued
jobs and runs them when its daemon starts again. A kind `undone_by_primary` (a create, whose
half-made VM and volumes must not stay) is handed instead to the primary once the node is
`fenced` (off, its storage fenced: nothing of it writes any more), whose run then removes what
the job made and fails it; while the node is only `dead` (its fence not done) it waits.

Cancel: a queued job is cancelled at once; a running one gets `/jobs/<id>/cancel`, which its
runner honours between steps. The primary keeps the newest `jobs.keep_finished` ended jobs and
removes older ones (`prune`).

Future kinds: add a `Kind` to KINDS here (is it idempotent; its group: a runner runs one job
of a group at a time) and an implementation to the daemon's runner (pvc.node.jobs.JobRunner's
`kinds`); the verb that creates a job says who runs it (a node, or `primary`).
"""

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pvc.errors import ConcurrentChange, Conflict, InvalidInput, NotFound
from pvc.limits import one_line
from pvc.ops import user_input
from pvc.zk import schema
from pvc.zk.handler import ZKHandler

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
ENDED = (DONE, FAILED, CANCELLED)
PRIMARY = "primary"  # the runner of jobs any primary may run
# Daemon states of a node the fence monitor declared dead: its queued jobs can never run.
DEAD_NODE_STATES = ("dead", "fenced", "fence-failed")
CANCEL_ATTEMPTS = 3


@dataclass(frozen=True)
class Kind:
    """What the cluster knows of a kind of job wherever it runs."""

    name: str
    idempotent: bool  # True: a job whose runner died runs again from the start
    group: str | None  # a runner runs one job of a group at a time (None: no such limit)
    summary: str
    # True: a job that ran on a node since fenced is handed to the primary, which undoes it
    undone_by_primary: bool = False


KINDS = {
    kind.name: kind
    for kind in (
        Kind("flush", True, "domain", "move every VM off a node, one at a time"),
        Kind("unflush", True, "domain", "bring a node's VMs back and start its autostart VMs"),
        # received by the API process that claims it; handed back only if that process died,
        # and then run by the primary's daemon to remove what it made (pvc.node.storage_upload)
        Kind("upload", True, "upload", "a new volume from a disk image sent to the API"),
        # an add that stopped half way is undone, not resumed: its runner's death fails it
        Kind("osd_add", False, "osd", "make a disk of a node a Ceph OSD"),
        Kind("osd_remove", True, "osd", "drain, stop, purge and wipe a Ceph OSD"),
        # handed back when its runner died, and then run only to remove what it made and
        # fail (pvc.node.provision): never resumed half way
        Kind(
            "provision",
            True,
            None,
            "build a VM from a provisioner profile and start it",
            undone_by_primary=True,
        ),  # fmt: skip
        # received by the API process, as an upload (pvc.ops.provisioner_ova)
        Kind("ova_upload", True, "upload", "an OVA's disks as new volumes and an ova profile"),
    )
}


def new_id(kind: str) -> str:
    now = datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S.%f}-{kind}-{secrets.token_hex(2)}"


def creation(kind: str, args: dict[str, Any], runner: str) -> tuple[str, dict[Any, Any]]:
    """A new queued job: its id and the values that create it (to write in the caller's own
    transaction, with whatever else the request changes)."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown job kind '{kind}'")
    job_id = new_id(kind)
    now = time.time()
    record = {
        "id": job_id,
        "kind": kind,
        "args": args,
        "runner": runner,
        "state": QUEUED,
        "progress": {"current": 0, "total": 0, "message": "queued"},
        "created": now,
        "started": None,
        "finished": None,
        "updated": now,
        "result": None,
        "error": None,
        "attempts": 0,
        "interrupted": None,
    }
    return job_id, {("job", job_id): record}


# --- reading ---------------------------------------------------------------------------------


def _require_id(job_id: str) -> None:
    if not schema.valid_name(job_id):
        raise InvalidInput(f"invalid task id {user_input.quoted(job_id)}")


def info(zk: ZKHandler, job_id: str) -> dict[str, Any]:
    """One job's record, with `cancel_requested` and `claimed_by` (the runner holding it)."""
    _require_id(job_id)
    keys = [("job", job_id), ("job.claim", job_id), ("job.cancel", job_id)]
    record, claim, cancel = zk.read_many(keys)
    if record is None:
        zk.catch_up()
        record, claim, cancel = zk.read_many(keys)
    if record is None:
        raise NotFound(f"task '{job_id}' does not exist")
    return record | {"claimed_by": claim, "cancel_requested": cancel is not None}


def list_jobs(
    zk: ZKHandler, kind: str | None = None, state: str | None = None
) -> list[dict[str, Any]]:
    """Every job, newest first; `kind` and `state` keep only those."""
    ids = zk.children("base.jobs")
    records = [r for r in zk.read_many([("job", i) for i in ids]) if r is not None]
    records = [
        r for r in records if (kind is None or r["kind"] == kind) and state in (None, r["state"])
    ]
    return sorted(records, key=lambda r: (r["created"], r["id"]), reverse=True)


def active(zk: ZKHandler, kinds: tuple[str, ...], runner: str) -> list[dict[str, Any]]:
    """The queued or running jobs of these kinds for this runner, oldest first."""
    found = [
        r
        for r in list_jobs(zk)
        if r["kind"] in kinds and r["runner"] == runner and r["state"] not in ENDED
    ]
    return found[::-1]


def ended(record: dict[str, Any] | None) -> bool:
    return record is None or record["state"] in ENDED


def wait_for_change(view: Any, job_id: str, since: float | None, timeout: float) -> dict:
    """The job's record once it differs from the one last updated at `since` (by default: as
    it is now) or has ended, or after `timeout` s, whichever comes first. Waits through the
    view's mirror: woken by changes, no polling."""
    current = info(view, job_id)
    since = current["updated"] if since is None else since

    def changed() -> bool:
        record = view.read(("job", job_id))
        return ended(record) or record["updated"] != since

    view.mirror.wait(changed, timeout)
    return info(view, job_id)


# --- cancelling ------------------------------------------------------------------------------


def cancellation(zk: ZKHandler, job_id: str) -> tuple[dict[Any, Any], dict[Any, int], str]:
    """What cancels a job: (values, expected versions, answer). A queued job is cancelled at
    once; a running one is asked to stop (its runner honours it between steps). An ended job
    is a Conflict naming its state."""
    _require_id(job_id)
    record, version = zk.read_versioned(("job", job_id))
    if record is None:
        raise NotFound(f"task '{job_id}' does not exist")
    if record["state"] in ENDED:
        raise Conflict(f"task '{job_id}' is already {record['state']}; nothing to cancel")
    claimed = zk.exists(("job.claim", job_id))
    if record["state"] == QUEUED or not claimed:  # not started, or its runner died
        now = time.time()
        stopped = finished(record, CANCELLED) | {"updated": now}
        stopped["progress"] = record["progress"] | {"message": "cancelled"}
        expect = {("job", job_id): version, ("job.claim", job_id): -1}
        return {("job", job_id): stopped}, expect, f"task '{job_id}' cancelled"
    # running: the claim exists while it runs and goes in the transaction that ends the job
    values = {("job.cancel", job_id): time.time()}
    answer = f"task '{job_id}' is running; its runner stops it after its current step"
    return values, {("job.claim", job_id): 0}, answer


def cancel(zk: ZKHandler, job_id: str) -> dict[str, Any]:
    """Cancels a job (see `cancellation`); {"message", "task"}."""
    attempts = 1
    while True:
        values, expect, message = cancellation(zk, job_id)
        try:
            zk.write(values, expect=expect)
            return {"message": message, "task": job_id}
        except ConcurrentChange:  # it was claimed, or ended, meanwhile: look again
            if attempts == CANCEL_ATTEMPTS:
                raise
            attempts += 1


# --- runners: claim, progress, end -----------------------------------------------------------


def claim(zk: ZKHandler, job_id: str, holder: str) -> tuple[dict[str, Any], int] | None:
    """Takes a queued job for `holder` (node and session); (record, version) now running, or
    None if it is not queued or another runner took it."""
    record, version = zk.read_versioned(("job", job_id))
    if record is None or record["state"] != QUEUED:
        return None
    if not zk.claim_ephemeral(("job.claim", job_id), holder):
        return None
    now = time.time()
    running = record | {"state": RUNNING, "started": now, "updated": now, "interrupted": None}
    running["attempts"] = record["attempts"] + 1
    running["progress"] = record["progress"] | {"message": "started"}
    try:
        zk.write({("job", job_id): running}, expect={("job", job_id): version})
    except ConcurrentChange:  # cancelled, or taken, meanwhile
        zk.delete(("job.claim", job_id))
        return None
    return running, version + 1


def update(
    zk: ZKHandler,
    record: dict[str, Any],
    version: int,
    also: dict[Any, Any] | None = None,
    expect: dict[Any, int] | None = None,
    release: bool = False,
    delete: list[Any] | None = None,
) -> int:
    """Writes a running job's new record (and `also`, and deletes `delete`), guarded by its
    version and its claim; `release` removes the claim in the same transaction (the job ends).
    The new version."""
    job_id = record["id"]
    guard = {("job", job_id): version, **(expect or {})}
    delete = list(delete or [])
    if release:
        delete += [("job.claim", job_id), ("job.cancel", job_id)]
    else:
        guard[("job.claim", job_id)] = 0
    zk.write({("job", job_id): record | {"updated": time.time()}, **(also or {})},
             expect=guard, delete=delete)  # fmt: skip
    return version + 1


def finished(record: dict[str, Any], state: str, **fields: Any) -> dict[str, Any]:
    """The record of a job that ended in `state`, with `result` or `error` in `fields`; an
    error (often an outside system's text) is kept on one line (limits.one_line)."""
    if fields.get("error") is not None:
        fields["error"] = one_line(fields["error"])
    return record | {"state": state, "finished": time.time(), **fields}


# --- the primary: runners that died, pruning -------------------------------------------------


def orphan_outcome(
    record: dict[str, Any], claimed: bool, node_state: str | None
) -> tuple[str, str, str] | None:
    """What becomes of a job whose runner may be gone: (new state, reason, its runner from
    now), or None to leave it.

    `claimed`: its claim exists; `node_state`: the daemon state of its runner node (None for a
    job run by the primary). See the module docstring for the rule."""
    runner = record["runner"]
    dead = node_state in DEAD_NODE_STATES
    ran = record["state"] == RUNNING and not claimed
    if not (ran or (record["state"] == QUEUED and dead)):
        return None
    why = (
        f"its runner {runner} died while it ran (its Zookeeper session ended)"
        if ran
        else record["interrupted"]
    )
    if dead and why and KINDS[record["kind"]].undone_by_primary:
        if node_state != "fenced":  # dead: its fence is not done; fence-failed: tried again
            return None
        return QUEUED, f"{why}, and node {runner} is fenced: the primary undoes it", PRIMARY
    if ran and not KINDS[record["kind"]].idempotent:
        return FAILED, why, runner
    if dead:
        if why:
            return FAILED, f"{why}, and node {runner} is {node_state}", runner
        return FAILED, f"node {runner} is {node_state}: its daemon cannot run the task", runner
    return QUEUED, why, runner


def settle_orphan(zk: ZKHandler, job_id: str, node_state_of: Any) -> str | None:
    """Applies `orphan_outcome` to a job, read from Zookeeper itself and written guarded by
    its version (and, for a running job, the claim's absence). The new state, or None."""
    record, version = zk.read_versioned(("job", job_id))
    if record is None or record["state"] in ENDED:
        return None
    claimed = zk.exists(("job.claim", job_id))
    node_state = None if record["runner"] == PRIMARY else node_state_of(record["runner"])
    outcome = orphan_outcome(record, claimed, node_state)
    if outcome is None:
        return None
    state, reason, runner = outcome
    if state == FAILED:
        new = finished(record, FAILED, error=reason)
        message = reason
    elif runner != record["runner"]:
        new = record | {"state": QUEUED, "interrupted": reason, "runner": runner}
        message = reason
    else:
        new = record | {"state": QUEUED, "interrupted": reason}
        message = f"{reason}; it resumes when {runner}'s daemon is back"
    new |= {"updated": time.time(), "progress": record["progress"] | {"message": message}}
    expect = {("job", job_id): version}
    if record["state"] == RUNNING:
        expect[("job.claim", job_id)] = -1
    zk.write({("job", job_id): new}, expect=expect, delete=[("job.cancel", job_id)])
    return state


def prune(zk: ZKHandler, keep: int) -> int:
    """Removes the ended jobs beyond the newest `keep` (by end time); how many it removed."""
    ended_jobs = [r for r in list_jobs(zk) if r["state"] in ENDED]
    ended_jobs.sort(key=lambda r: (r["finished"] or r["updated"], r["id"]), reverse=True)
    old = ended_jobs[keep:]
    if old:
        zk.write({}, delete=[("job", r["id"]) for r in old])
    return len(old)
