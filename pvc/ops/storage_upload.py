"""Uploads: a new volume made from a disk image sent over the API, as a task with progress.

The API's bodies are bounded (limits.BODY_MAX), so an image travels in pieces, straight into
Ceph, never whole on the API's disk:
1. `begin` (POST .../upload): checks (pool, name, fill), creates the RBD image the bytes go to
   (for raw the volume itself, sized as the file; for qcow2/vmdk a staging image named
   `_upload_<volume>`, which no pvc name can be) and the task, claimed at once by this API
   process (an ephemeral claim of its Zookeeper session) and running.
2. `receive` (PUT .../upload?task=&offset=): writes one piece at its offset through one open
   image handle (pieces may come in parallel, in any order), counting bytes and recording
   progress at most every PROGRESS_INTERVAL.
3. `finish` (POST .../upload/finish): once every byte has arrived, completes on a thread:
   qcow2/vmdk are read by `qemu-img info` (its words refuse what is not such an image),
   checked against the pool's fill, converted into a new volume of their virtual size and
   the staging image removed; then the volume's records and the task's end are ONE
   transaction.
Anything else ends the task and removes every image it made: a failure, a cancel (`pvc cluster
task cancel`, seen by the next piece or by the watchdog within a second, or by the conversion,
which kills qemu-img and waits for it first), a client that sends nothing for IDLE_TIMEOUT.
A killed qemu-img's watch keeps its images busy until the OSDs time it out: removal retries.
If this API process dies, its claim goes with its session: the primary's job runner hands the
task (an idempotent kind) back to the queue and the daemon's `upload` kind
(pvc.node.storage_upload) removes the images and ends it failed.

The uploads in progress live in this process (`_uploads`); the API runs on the primary only,
so all of an upload's requests reach the same process.

The machinery is shared with OVA imports (pvc.ops.provisioner_ova, job kind `ova_upload`): an
Upload names its job `kind`, its `subject` (how messages name it) and `complete`, what its
finish does on the thread; `stage` starts one, `find`, `write_piece` and `complete` take its
requests, and `progress`, `convert` and `stop` serve its completion.
"""

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pvc import limits
from pvc.config import Config
from pvc.drivers import import_binding, qemu_img
from pvc.drivers.ceph import CephError
from pvc.errors import ConcurrentChange, Conflict, InvalidInput, NotFound, PvcError
from pvc.ops import jobs, storage_ceph, storage_volume
from pvc.ops.sizes import SIZE_MAX, format_size
from pvc.ops.storage_ceph import refusals, undo
from pvc.ops.storage_volume import label
from pvc.zk.store import Store

log = logging.getLogger("pvc.ops.storage_upload")
PIECE_MAX = limits.BODY_MAX
STAGING_PREFIX = "_upload_"
IDLE_TIMEOUT = 60.0
PROGRESS_INTERVAL = 1.0
WATCH_INTERVAL = 1.0
WATCH_EXPIRY = 45.0  # osd_client_watch_timeout (30 s) and a margin
IN_FLIGHT = 16  # pieces written at once (librbd's asynchronous writes; 32 MiB held at most)


@dataclass
class Upload:
    store: Store
    config: Config
    pool: str
    volume: str
    image_format: str
    size: int  # bytes of the file
    image: str  # where the bytes go
    record: dict[str, Any]
    version: int
    handle: Any = None
    resources: ExitStack = field(default_factory=ExitStack)
    made: set[str] = field(default_factory=set)  # the images this upload created
    received: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    last_progress: float = 0.0
    finishing: bool = False
    stopped: bool = False
    writing: int = 0  # pieces being written now
    error: str | None = None  # why a write failed
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(IN_FLIGHT))
    lock: threading.Lock = field(default_factory=threading.Lock)  # the fields above
    record_lock: threading.Lock = field(default_factory=threading.Lock)  # task record writes
    idle: threading.Condition = field(init=False)
    kind: str = "upload"  # its job kind
    subject: str = ""  # what it makes, for messages (default: the volume's label)
    complete: Callable[["Upload"], None] | None = None  # its finish (default: the volume's)

    def __post_init__(self) -> None:
        self.idle = threading.Condition(self.lock)
        self.subject = self.subject or label(self.pool, self.volume)

    def close_image(self) -> None:
        """Closes the image once no piece is being written (call holding `lock`)."""
        self.idle.wait_for(lambda: self.writing == 0)
        self.resources.close()

    @property
    def task(self) -> str:
        return self.record["id"]

    def write_record(self, change: Any, **options: Any) -> None:
        """The task's new record, `change(record)` (guarded by its version and this
        process's claim; one writer at a time)."""
        with self.record_lock:
            record = change(self.record)
            self.version = jobs.update(self.store.zk, record, self.version, **options)
            self.record = record


_uploads: dict[str, Upload] = {}
_uploads_lock = threading.Lock()
_watchdog: threading.Thread | None = None


def begin(
    store: Store, config: Config, pool: str, volume: str, image_format: str, file_size: int
) -> dict[str, Any]:
    """Starts an upload of a `file_size`-byte image; {"message", "task", "piece_max"}."""
    storage_ceph.require_pool(store, pool)
    storage_ceph.require_no_volume(store, pool, volume)
    if image_format not in qemu_img.FORMATS:
        raise InvalidInput(f"image format must be one of {', '.join(qemu_img.FORMATS)}")
    if not 0 < file_size < SIZE_MAX:
        raise InvalidInput(f"invalid file size {file_size}: from 1 byte to 8192P")
    image = volume if image_format == "raw" else STAGING_PREFIX + volume
    upload = Upload(store, config, pool, volume, image_format, file_size, image, {}, -1)
    args = {"pool": pool, "volume": volume, "format": image_format, "size": file_size,
            "image": image}  # fmt: skip
    stage(upload, args, lambda: storage_ceph.require_no_volume(store, pool, volume))
    return {
        "message": f"upload of {label(pool, volume)} started (task {upload.task})",
        "task": upload.task,
        "piece_max": PIECE_MAX,
    }


def stage(upload: Upload, args: dict[str, Any], check: Callable[[], None]) -> None:
    """Starts `upload`: under its pool's lock, `check()` and the fill check for its bytes,
    then its image, and its task (of `upload.kind`, with `args`), taken by this process."""
    store, config, pool, image = upload.store, upload.config, upload.pool, upload.image
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        check()
        storage_ceph.check_room(store, config, pool, upload.size)
        with refusals(label(pool, image)):
            images.create(pool, image, upload.size)
        try:
            _start_task(upload, args)
        except Exception:
            undo(images.remove, pool, image)
            raise
        upload.made.add(image)
    with _uploads_lock:
        _uploads[upload.task] = upload
    _start_watchdog()


def _start_task(upload: Upload, args: dict[str, Any]) -> None:
    """The upload's task, created running with this process's claim (no daemon takes it),
    and the image opened for writes."""
    zk = upload.store.zk
    task, values = jobs.creation(upload.kind, args, runner=jobs.PRIMARY)
    if not zk.claim_ephemeral(("job.claim", task), f"api on {upload.config.node_name}"):
        raise Conflict(f"task '{task}' was claimed elsewhere")
    now = time.time()
    record = values[("job", task)] | {"state": jobs.RUNNING, "started": now, "attempts": 1}
    record["progress"] = {"current": 0, "total": upload.size, "message": "receiving"}
    try:
        zk.write({("job", task): record}, expect={("job.claim", task): 0})
        upload.record, upload.version = record, zk.read_versioned(("job", task))[1]
        upload.handle = upload.resources.enter_context(
            storage_ceph.images(upload.config).writer(upload.pool, upload.image)
        )
    except Exception:
        zk.write({}, delete=[("job", task)])
        raise


def find(task: str, kind: str, subject: str) -> Upload:
    """The upload of `kind` making `subject` in progress here as `task`; NotFound if none."""
    with _uploads_lock:
        upload = _uploads.get(task)
    if upload is None or (upload.kind, upload.subject) != (kind, subject):
        raise NotFound(f"no upload of {subject} as task '{task}' is in progress here")
    return upload


def receive(pool: str, volume: str, task: str, offset: int, data: bytes) -> dict[str, Any]:
    """Writes one piece at `offset`; {"received": bytes so far}."""
    return write_piece(find(task, "upload", label(pool, volume)), offset, data)


def write_piece(upload: Upload, offset: int, data: bytes) -> dict[str, Any]:
    """Writes one piece of `upload` at `offset`; {"received": bytes so far}."""
    task, pool = upload.task, upload.pool
    if offset < 0 or offset + len(data) > upload.size:
        raise InvalidInput(
            f"bytes {offset} to {offset + len(data)} are outside the {upload.size}-byte file"
        )
    if not upload.slots.acquire(timeout=IDLE_TIMEOUT):
        raise Conflict(f"task '{task}': Ceph took no write for {IDLE_TIMEOUT:g} s")
    with upload.lock:
        if upload.finishing or upload.stopped or upload.error:
            upload.slots.release()
            raise Conflict(f"task '{task}' takes no more bytes {upload.error or ''}".strip())
        upload.writing += 1
    try:
        with refusals(label(pool, upload.image)):
            _aio_write(upload, data, offset)
    except Exception:
        _written(upload, data, None)
        raise
    with upload.lock:
        received = upload.received
        upload.last_seen = time.monotonic()
        report = upload.last_seen - upload.last_progress >= PROGRESS_INTERVAL
        if report:
            upload.last_progress = upload.last_seen
    if report:
        progress(upload, received, f"received {format_size(received)}")
    return {"received": received}


def _aio_write(upload: Upload, data: bytes, offset: int) -> None:
    """Starts one piece's write; librbd's own refusal (rbd.Error) as a CephError."""
    try:
        upload.handle.aio_write(data, offset, partial(_written, upload, data))
    except import_binding("rbd").Error as exc:
        what = f"a write to {label(upload.pool, upload.image)}"
        raise storage_ceph.connection(upload.config).translate(exc, what) from None


def _written(upload: Upload, data: bytes, completion: Any) -> None:
    """A piece's write ended (librbd's thread: no waiting here); `data` was kept alive till
    now. A failed write fails the upload at its next piece or its finish."""
    code = -5 if completion is None else completion.get_return_value()
    with upload.lock:
        upload.writing -= 1
        if code < 0 and completion is not None:
            upload.error = upload.error or f"a write failed: {os.strerror(-code)}"
        elif code >= 0:
            upload.received += len(data)
        upload.idle.notify_all()
    upload.slots.release()


def progress(upload: Upload, current: int, message: str) -> None:
    """Records progress, unless a cancel was asked for (then the upload ends cancelled)."""
    if reason := _check(upload, current, message):
        raise stop(upload, *reason)


def _check(upload: Upload, current: int, message: str) -> tuple[str, str] | None:
    """Records progress; (state, reason) when the upload must end instead: cancelled, or its
    task changed elsewhere. Stops nothing itself (a conversion must end first)."""
    if upload.store.zk.exists(("job.cancel", upload.task)):
        return jobs.CANCELLED, "cancelled"

    def change(record: dict[str, Any]) -> dict[str, Any]:
        progress = {"current": current, "total": record["progress"]["total"], "message": message}
        return record | {"progress": progress}

    try:
        upload.write_record(change)
    except ConcurrentChange:
        return jobs.FAILED, "the task changed elsewhere"
    return None


def finish(pool: str, volume: str, task: str) -> dict[str, Any]:
    """Completes an upload whose bytes have all arrived, on a thread of its own (qcow2 and
    vmdk are converted); follow the task for its end."""
    return complete(find(task, "upload", label(pool, volume)))


def complete(upload: Upload) -> dict[str, Any]:
    """Runs `upload.complete` on a thread of its own once every byte has arrived (a failure
    there ends the task and removes what it made); follow the task for its end."""
    task = upload.task
    with upload.lock:
        if upload.finishing:
            raise Conflict(f"task '{task}' is finishing already")
        upload.idle.wait_for(lambda: upload.writing == 0)
        error, received = upload.error, upload.received
        upload.finishing = error is None and received >= upload.size
    if error is not None:
        raise stop(upload, jobs.FAILED, error)
    if received < upload.size:
        raise Conflict(f"only {received} of {upload.size} bytes of task '{task}' have arrived")
    threading.Thread(target=_run, args=(upload,), name=f"upload {task}", daemon=True).start()
    return {"message": f"upload of {upload.subject} completing (task {task})", "task": task}


def _run(upload: Upload) -> None:
    """Runs the upload's completion; whatever fails there ends it and removes what it made."""
    try:
        with upload.lock:
            upload.close_image()
        (upload.complete or _complete)(upload)
    except PvcError as exc:
        stop(upload, jobs.FAILED, exc.message)
    except Exception as exc:  # a bug must still end the task and clean up
        log.exception("upload of %s failed", upload.subject)
        stop(upload, jobs.FAILED, f"internal error: {exc}")


def _complete(upload: Upload) -> None:
    """A volume upload's completion: qcow2/vmdk converted, then the volume's records."""
    pool, volume = upload.pool, upload.volume
    images = storage_ceph.images(upload.config)
    if upload.image_format != "raw" and (reason := _convert(upload, images)):
        stop(upload, *reason)
        return
    stats = storage_volume.stats_of(images.info(pool, volume))
    result = {"pool": pool, "volume": volume, "size": stats["size"]}
    done(upload, result, storage_volume.record_values(pool, volume, stats),
         {("volume", pool, volume): -1})  # fmt: skip
    log.info("upload of %s/%s done", pool, volume)


def done(
    upload: Upload, result: dict[str, Any], values: dict[Any, Any], expect: dict[Any, int]
) -> None:
    """Ends the upload done, writing `values` (guarded by `expect`) in the same transaction."""

    def ended(record: dict[str, Any]) -> dict[str, Any]:
        total = record["progress"]["total"]
        progress = {"current": total, "total": total, "message": "done"}
        return jobs.finished(record, jobs.DONE, result=result, progress=progress)

    upload.write_record(ended, also=values, expect=expect, release=True)
    _forget(upload)


def _convert(upload: Upload, images: Any) -> tuple[str, str] | None:
    """The staging image's disk into the new volume (made here, at the disk's size); when
    the upload must end instead (a cancel, seen while qemu-img runs), (state, reason), once
    qemu-img has exited."""
    pool, volume, config = upload.pool, upload.volume, upload.config
    ceph = storage_ceph.connection(config)
    progress(upload, upload.size, f"reading the {upload.image_format} image")
    size = qemu_img.virtual_size(ceph, pool, upload.image, upload.image_format)
    with storage_ceph.pool_lock(upload.store, pool):
        storage_ceph.require_no_volume(upload.store, pool, volume)
        storage_ceph.check_room(upload.store, config, pool, size)
        with refusals(label(pool, volume)):
            images.create(pool, volume, size)
        upload.made.add(volume)
    upload.write_record(lambda r: r | {"progress": r["progress"] | {"total": size}})
    if reason := convert(upload, upload.image_format, volume, size, "converting"):
        return reason
    images.remove(pool, upload.image)
    return None


def convert(
    upload: Upload,
    image_format: str,
    target: str,
    size: int,
    doing: str,
    extent: qemu_img.Extent | None = None,
    before: int = 0,
) -> tuple[str, str] | None:
    """qemu-img writes the disk of `size` bytes in the staging image (at `extent`) into the
    volume `target`, its progress recorded as `doing: N%` (bytes counted from `before`);
    when the upload must end instead (a cancel, seen while qemu-img runs), (state, reason),
    once qemu-img has exited."""
    last = [0.0]
    ending: list[tuple[str, str]] = []

    def converted(percent: float) -> bool:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL:
            last[0] = now
            current = before + int(size * percent / 100)
            reason = _check(upload, current, f"{doing}: {percent:.0f}%")
            ending.extend([reason] if reason else [])
        return not ending

    ceph = storage_ceph.connection(upload.config)
    try:
        qemu_img.convert(ceph, upload.pool, upload.image, image_format, target, converted,
                         extent=extent)  # fmt: skip
    except qemu_img.Stopped:
        return ending[0]
    return None


def stop(upload: Upload, state: str, reason: str) -> PvcError:
    """Ends the upload in `state` and removes what it made; the error to raise."""
    word = "cancelled" if state == jobs.CANCELLED else "failed"
    error = Conflict(f"upload task '{upload.task}' {word}: {reason}")
    with upload.lock:
        if upload.stopped:
            return error
        upload.stopped = True
        upload.close_image()
    _forget(upload)
    for image in sorted(upload.made):
        _remove(upload, image)
    fields = {"error": reason} if state == jobs.FAILED else {}

    def ended(record: dict[str, Any]) -> dict[str, Any]:
        progress = record["progress"] | {"message": reason}
        return jobs.finished(record, state, progress=progress, **fields)

    try:
        upload.write_record(ended, release=True)
    except PvcError as exc:  # claim lost: the primary settles the task
        log.warning("upload task %s: could not record its end: %s", upload.task, exc.message)
    return error


def _remove(upload: Upload, image: str) -> None:
    """Removes an image the upload made; while Ceph says it is busy (the watch of a killed
    qemu-img lasts until the OSDs time it out), again, up to WATCH_EXPIRY; what is left over
    is logged (the daemon's `upload` kind cannot see it: the task has ended)."""
    images = storage_ceph.images(upload.config)
    deadline = time.monotonic() + WATCH_EXPIRY
    while True:
        try:
            images.remove(upload.pool, image)
            return
        except CephError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                log.error("upload task %s: %s is left over: %s", upload.task,
                          label(upload.pool, image), exc.message)  # fmt: skip
                return
        time.sleep(1.0)


def _forget(upload: Upload) -> None:
    with _uploads_lock:
        _uploads.pop(upload.task, None)


def _start_watchdog() -> None:
    global _watchdog
    with _uploads_lock:
        if _watchdog is None or not _watchdog.is_alive():
            _watchdog = threading.Thread(target=_watch, name="upload watchdog", daemon=True)
            _watchdog.start()


def _watch() -> None:
    """Ends uploads that were cancelled or whose client went quiet."""
    while True:
        time.sleep(WATCH_INTERVAL)
        with _uploads_lock:
            waiting = [u for u in _uploads.values() if not u.finishing]
        for upload in waiting:
            try:
                if upload.store.zk.exists(("job.cancel", upload.task)):
                    stop(upload, jobs.CANCELLED, "cancelled")
                elif time.monotonic() - upload.last_seen > IDLE_TIMEOUT:
                    reason = f"no data for {IDLE_TIMEOUT:g} s: the client stopped sending"
                    stop(upload, jobs.FAILED, reason)
            except PvcError as exc:
                log.warning("upload watchdog, task %s: %s", upload.task, exc.message)
