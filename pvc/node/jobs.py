"""The job runner in every node daemon: claims the jobs meant for this node and runs them.

A controller (pvc.node.controller) whose keys are job ids, fed by the daemon's mirror (any
change under `/jobs/<id>`; every job when a node's daemon state or the primary changes) and a
resync every keepalive interval. Its step is short:
- a queued job this node runs (its runner is this node, or `primary` while this node is
  primary) is claimed (pvc.ops.jobs.claim) and its work started on a thread of its own (a job
  is long; the controller's workers stay free), unless a job of its kind's group runs here
  (a flush and an unflush of a node never run at once: the new one waits until the one it
  cancelled has stopped). A kind this node cannot run fails at once.
- on the primary only, the settling of runners that died (pvc.ops.jobs.settle_orphan: a
  running job without a claim, a queued job of a node declared dead) and the pruning of old
  ended jobs. The primary is the one owner of that work; its writes are guarded, so a
  former primary that still believes it is one cannot undo a newer decision.

A job's work gets a `Job`: `step(current, total, message)` checks for a cancel request (and the
daemon stopping) and records progress; `done(result, also, expect)` ends it in one transaction
with the kind's own final writes. Waits inside a job go through the mirror. Between steps:
- cancel requested -> the job ends `cancelled`;
- the daemon stops -> an idempotent job goes back to `queued` (resumed when this daemon
  returns), any other ends `failed`;
- its claim is gone (this daemon's session ended) -> the thread stops writing: the primary
  settles the job.
"""

import logging
import threading
from typing import Any, Protocol

from pvc.errors import ConcurrentChange, PvcError
from pvc.limits import one_line
from pvc.node.controller import Controller
from pvc.ops import jobs
from pvc.zk import schema
from pvc.zk.handler import ZKHandler, resolve

log = logging.getLogger("pvc.node.jobs")
PRUNE = "~prune"  # the controller key of the pruning step (never a job id: '~' is not valid)
WORKERS = 2
STOP_TIMEOUT = 5.0


class JobKind(Protocol):
    """A kind's implementation: `run` does the work through `job` and returns its result (or
    ends the job itself with `job.done`); a PvcError fails the job with its message."""

    name: str

    def run(self, job: "Job") -> Any: ...


class JobCancelled(Exception):
    """A cancel was requested: the job ends cancelled."""


class JobInterrupted(Exception):
    """The daemon stops: the job is handed back (idempotent) or fails."""


class Job:
    """A running job, as its work sees it."""

    def __init__(self, runner: "JobRunner", record: dict[str, Any], version: int):
        self._runner = runner
        self.record = record
        self.version = version
        self.ended = False

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def args(self) -> dict[str, Any]:
        return self.record["args"]

    def check(self) -> None:
        """Raises JobCancelled or JobInterrupted if the job must stop now."""
        if self._runner.view.exists(("job.cancel", self.id)):
            raise JobCancelled()
        if self._runner.stopping.is_set():
            raise JobInterrupted()

    def step(self, current: int, total: int, message: str) -> None:
        """Checks that the job may go on, then records its progress."""
        self.check()
        progress = {"current": current, "total": total, "message": message}
        self._write(self.record | {"progress": progress})

    def done(
        self,
        result: Any,
        also: dict[Any, Any] | None = None,
        expect: dict[Any, int] | None = None,
        delete: list[Any] | None = None,
    ) -> None:
        """Ends the job done, writing `also` and deleting `delete` (guarded by `expect`) in the
        same transaction."""
        total = self.record["progress"]["total"]
        progress = {"current": total, "total": total, "message": "done"}
        record = jobs.finished(self.record, jobs.DONE, result=result, progress=progress)
        self._write(record, also, expect, release=True, delete=delete)

    def end(self, state: str, reason: str, **fields: Any) -> None:
        """Ends the job (or, for `queued`, hands it back) with `reason` as its message."""
        progress = self.record["progress"] | {"message": one_line(reason)}
        if state == jobs.QUEUED:
            record = self.record | {"state": jobs.QUEUED, "progress": progress, **fields}
        else:
            record = jobs.finished(self.record, state, progress=progress, **fields)
        self._write(record, release=True)

    def _write(
        self,
        record: dict[str, Any],
        also: dict[Any, Any] | None = None,
        expect: dict[Any, int] | None = None,
        release: bool = False,
        delete: list[Any] | None = None,
    ) -> None:
        zk = self._runner.view
        self.version = jobs.update(zk, record, self.version, also, expect, release, delete)
        self.record = record
        self.ended = release


class JobRunner:
    def __init__(
        self,
        zk: ZKHandler,
        view: Any,
        name: str,
        kinds: dict[str, JobKind],
        *,
        keep: int,
        resync_interval: float,
    ):
        self.zk = zk
        self.view = view  # reads from the mirror, writes waited for until the mirror shows them
        self.name = name
        self.kinds = kinds
        self.keep = keep
        self.stopping = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._groups: dict[str, str] = {}  # running job -> its kind's group
        self._lock = threading.Lock()
        self.controller = Controller(
            "jobs",
            self._step,
            workers=WORKERS,
            resync=self._every_job,
            resync_interval=resync_interval,
        )

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.stopping.clear()
        self.view.mirror.listen(self._on_mirror)
        self.controller.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stops claiming; running jobs stop at their next step (and are handed back or fail)."""
        self.controller.stop()
        self.stopping.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    # --- feeding ------------------------------------------------------------------------------

    def _every_job(self) -> list[str]:
        return [*self.view.children("base.jobs"), PRUNE]

    def _on_mirror(self, path: str, data: bytes | None) -> None:
        parts = path.split("/")
        if path.startswith(JOBS_ROOT + "/"):
            self.controller.enqueue(parts[len(JOBS_PARTS)])
        elif any(_matches(parts, key) for key in EVERY_JOB_KEYS):
            self.controller.enqueue_all(self._every_job())

    # --- the step -----------------------------------------------------------------------------

    def _step(self, key: str) -> None:
        primary = self._is_primary()
        if key == PRUNE:
            if primary:
                removed = jobs.prune(self.view, self.keep)  # reads the mirror
                if removed:
                    log.info("removed %d old ended tasks", removed)
            return
        record = self.view.read(("job", key))
        if record is None:
            return
        if record["state"] == jobs.QUEUED and self._mine(record, primary):
            self._claim(key, record["kind"])
        elif primary and record["state"] in jobs.ENDED:
            self.controller.enqueue(PRUNE)
        if primary and self._orphan_suspect(record):
            state = jobs.settle_orphan(self.zk, key, self._node_state)
            if state:
                log.warning("task %s: its runner is gone; now %s", key, state)

    def _is_primary(self) -> bool:
        return self.view.read("base.config.primary_node") == self.name and (
            self.view.read(("node.state.router", self.name)) == "primary"
        )

    def _mine(self, record: dict[str, Any], primary: bool) -> bool:
        return record["runner"] == self.name or (record["runner"] == jobs.PRIMARY and primary)

    def _node_state(self, node: str) -> str | None:
        return self.view.read(("node.state.daemon", node))

    def _orphan_suspect(self, record: dict[str, Any]) -> bool:
        """What the mirror suggests settle_orphan should look at (it checks on Zookeeper)."""
        if record["state"] == jobs.RUNNING:
            return not self.view.exists(("job.claim", record["id"]))
        if record["state"] == jobs.QUEUED and record["runner"] != jobs.PRIMARY:
            return self._node_state(record["runner"]) in jobs.DEAD_NODE_STATES
        return False

    def _claim(self, job_id: str, kind: str) -> None:
        kind_group = jobs.KINDS[kind].group if kind in jobs.KINDS else None
        with self._lock:
            if job_id in self._threads or self.stopping.is_set():
                return  # still running here (its earlier claim was lost): again when it ends
            if kind_group in self._groups.values():
                return  # one job of a group at a time: again when that one ends
            session = self.zk.session_id or 0
            claimed = jobs.claim(self.zk, job_id, f"{self.name} 0x{session:x}")
            if claimed is None:
                return
            record, version = claimed
            thread = threading.Thread(
                target=self._run,
                args=(Job(self, record, version),),
                name=f"job-{job_id}",
                daemon=True,
            )
            self._threads[job_id] = thread
            self._groups[job_id] = kind_group or job_id
        log.info("task %s (%s %s): started", job_id, record["kind"], record["args"])
        thread.start()

    # --- a job's thread -----------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        kind_name = job.record["kind"]
        try:
            kind = self.kinds.get(kind_name)
            if kind is None:
                raise PvcError(f"node {self.name} cannot run tasks of kind {kind_name}")
            result = kind.run(job)
            if not job.ended:
                job.done(result)
            log.info("task %s: done", job.id)
        except JobCancelled:
            self._end(job, jobs.CANCELLED, "cancelled")
        except JobInterrupted:
            stopped = f"the daemon of {self.name} stopped while it ran"
            if jobs.KINDS[kind_name].idempotent:
                resume = f"{stopped}; it resumes when the daemon is back"
                self._end(job, jobs.QUEUED, resume, interrupted=stopped)
            else:
                self._end(job, jobs.FAILED, "failed", error=stopped)
        except ConcurrentChange:
            log.warning("task %s: no longer held by this daemon; the primary settles it", job.id)
        except PvcError as exc:
            self._end(job, jobs.FAILED, "failed", error=exc.message)
        except Exception as exc:
            log.exception("task %s failed", job.id)
            self._end(job, jobs.FAILED, "failed", error=f"internal error: {exc!r}")
        finally:
            with self._lock:
                self._threads.pop(job.id, None)
                self._groups.pop(job.id, None)
            self.controller.enqueue_all(self._every_job())  # and what waited for it

    def _end(self, job: Job, state: str, reason: str, **fields: Any) -> None:
        """Ends (or hands back) a job from its thread; a lost claim leaves it to the primary."""
        log.info("task %s: %s (%s)", job.id, state, fields.get("error") or reason)
        try:
            job.end(state, reason, **fields)
        except PvcError as exc:
            log.warning("task %s: could not record it %s: %s", job.id, state, exc.message)


def _template(key: str) -> list[str]:
    return schema.KEYS[key][0].split("/")


def _matches(parts: list[str], key: str) -> bool:
    """Whether a path (split on '/') is an instance of the schema key's template."""
    template = _template(key)
    return len(parts) == len(template) and all(
        t.startswith("{") or t == p for t, p in zip(template, parts, strict=True)
    )


JOBS_ROOT = resolve("base.jobs")[0]
JOBS_PARTS = JOBS_ROOT.split("/")
# Changes after which every job is looked at again: a node's death, a new primary.
EVERY_JOB_KEYS = ("node.state.daemon", "node.state.router", "base.config.primary_node")
