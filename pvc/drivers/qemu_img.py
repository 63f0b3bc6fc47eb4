"""qemu-img on RBD images: the size a disk image holds and its conversion to raw.

The one tool pvc runs for images (librbd has no qcow2 or vmdk reader). Images are named as
QEMU's rbd protocol does, `rbd:POOL/IMAGE:conf=CONF:id=CLIENT:keyring=KEYRING` plus librbd's
timeouts (a dead Ceph fails qemu-img instead of hanging it): the cephx key stays in its
keyring file, never in argv. qemu-img's own words are kept for the user ("Image is not in
qcow2 format"), without the long `Could not open 'rbd:...'` prefix.

An uploaded image is hostile: a qcow2/vmdk may name a backing file, a qcow2 an external data
file, a vmdk descriptor flat extents; qemu-img would open any of them (a host file such as the
Ceph keyring, another volume as `rbd:...`) and copy its bytes into the new volume. So
`virtual_size` refuses an image that names any file but itself, and the source is always
opened as `json:{"driver": FMT, "backing": null, "file": {"driver": "rbd", "filename": RBD}}`:
no backing file is opened even if the check were fooled. A disk image inside an RBD image (an
OVA's member, `extent` = (offset, size)) is read through a raw node with that offset and size
under the format's; its extents are then named as that node, in JSON, which the check accepts.

Every run is bounded: `info` by INFO_TIMEOUT; `convert` by the caller's `progress` check (asked
at least every POLL_INTERVAL, whether qemu-img prints or not) and by STALL_TIMEOUT without
progress. A stopped convert kills qemu-img and waits for it, so the images it held open can
be removed at once.
"""

import json
import os
import re
import select
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from pvc.drivers.ceph import OSD_OP_FACTOR, Ceph, CephError

QEMU_IMG = "qemu-img"
INFO_TIMEOUT = 60.0
POLL_INTERVAL = 1.0
STALL_TIMEOUT = 600.0  # no progress for this long: qemu-img is stuck
FORMATS = ("raw", "qcow2", "vmdk")
VMDK_TYPES = ("monolithicSparse", "streamOptimized")  # one file, the image itself
_OPEN_PREFIX = re.compile(r"^(qemu-img: )?(Could not open '[^']*': )+")
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
Extent = tuple[int, int]  # (offset, size) of a disk image inside an RBD image


class QemuImgError(CephError):
    """qemu-img refused an image (its words), or pvc refused it; a 400-class problem of the
    upload itself."""

    http_status = 400


class Stopped(CephError):
    """The caller stopped a conversion (qemu-img was killed and has exited)."""


def rbd_spec(ceph: Ceph, pool: str, image: str) -> str:
    seconds = max(1, round(ceph.timeout))
    osd_seconds = max(1, round(ceph.timeout * OSD_OP_FACTOR))
    return (
        f"rbd:{pool}/{image}:conf={ceph.config_file}:id={ceph.client}:keyring={ceph.keyring}"
        f":client_mount_timeout={seconds}:rados_mon_op_timeout={seconds}"
        f":rados_osd_op_timeout={osd_seconds}"
    )


def _file_node(ceph: Ceph, pool: str, image: str, extent: Extent | None) -> dict[str, Any]:
    """The image's bytes (only `extent` of them: (offset, size)) as a qemu block node."""
    node = {"driver": "rbd", "filename": rbd_spec(ceph, pool, image)}
    if extent is None:
        return node
    return {"driver": "raw", "offset": extent[0], "size": extent[1], "file": node}


def source_spec(
    ceph: Ceph, pool: str, image: str, image_format: str, extent: Extent | None = None
) -> str:
    """The image (or the disk image at `extent` in it: an archive's member) read in
    `image_format`, with no backing file (whatever its header says)."""
    options = {"driver": image_format, "backing": None,
               "file": _file_node(ceph, pool, image, extent)}  # fmt: skip
    return "json:" + json.dumps(options)


def _words(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip().splitlines()
    line = text[-1] if text else "qemu-img failed"
    return _OPEN_PREFIX.sub("", line)


def virtual_size(
    ceph: Ceph, pool: str, image: str, image_format: str, extent: Extent | None = None
) -> int:
    """The disk size the image (at `extent`) in `image_format` holds; QemuImgError when it is
    not one, or when it names another file (backing, data file, vmdk extent)."""
    source = source_spec(ceph, pool, image, image_format, extent)
    command = [QEMU_IMG, "info", "--output", "json", source]
    try:
        done = subprocess.run(command, capture_output=True, timeout=INFO_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise CephError(f"qemu-img info did not answer within {INFO_TIMEOUT:g} s") from None
    if done.returncode != 0:
        raise QemuImgError(f"not a {image_format} disk image: {_words(done.stderr)}")
    info = json.loads(done.stdout)
    if problem := other_files(info, _file_node(ceph, pool, image, extent)):
        raise QemuImgError(f"refused: the {image_format} image {problem}")
    return int(info["virtual-size"])


def other_files(info: dict[str, Any], own: dict[str, Any] | None = None) -> str | None:
    """What in `qemu-img info`'s answer reads a file other than the image (or than `own`,
    the block node it was opened on, which qemu names as JSON); None if nothing."""
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    if backing is not None:
        return f"names a backing file ({_short(backing)})"
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file") is not None:
        return f"names an external data file ({_short(data['data-file'])})"
    if info.get("format") == "vmdk":
        if data.get("create-type") not in VMDK_TYPES:
            kind = _short(str(data.get("create-type")))
            return f"is of type {kind}: only {' and '.join(VMDK_TYPES)} are taken"
        for extent in data.get("extents") or []:
            if not _is_own(str(extent.get("filename")), info, own):
                return f"has an extent in another file ({_short(str(extent.get('filename')))})"
    return None


def _is_own(name: str, info: dict[str, Any], own: dict[str, Any] | None) -> bool:
    if name == info.get("filename"):
        return True
    if own is None or not name.startswith("json:"):
        return False
    try:
        return json.loads(name[5:]) == own
    except ValueError:
        return False


def _short(name: str) -> str:
    """A file name for a one-line message (no keyring path from an rbd spec)."""
    return name.split(":", 2)[1] if name.startswith("rbd:") else name[:120].replace("\n", " ")


def convert(
    ceph: Ceph,
    pool: str,
    source: str,
    image_format: str,
    target: str,
    progress: Callable[[float], bool],
    stall: float = STALL_TIMEOUT,
    extent: Extent | None = None,
) -> None:
    """Writes the disk held by `source` (in `image_format`) into the existing raw image
    `target` (`-n`: pvc made it, with its features). `progress(percent)` is called as qemu-img
    goes, and at least every POLL_INTERVAL; when it returns False (or raises), or when the
    percentage has not moved for `stall` seconds, qemu-img is killed and waited for, and
    Stopped (or the exception) raised."""
    reading = source_spec(ceph, pool, source, image_format, extent)
    # -W: out-of-order writes (the target is new and read by no one until this ends): into an
    # image with exclusive-lock and object-map, about twice as fast as in order
    target_spec = rbd_spec(ceph, pool, target)
    command = [QEMU_IMG, "convert", "-p", "-n", "-W", "-O", "raw", reading, target_spec]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()  # stderr drained apart: a full pipe cannot block qemu-img
    try:
        _follow(process.stdout.fileno(), progress, stall)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join()
        process.stdout.close()
        process.stderr.close()
    if process.returncode != 0:
        words = _words(b"".join(errors))
        raise QemuImgError(f"qemu-img could not convert the {image_format} image: {words}")


def _follow(out: int, progress: Callable[[float], bool], stall: float) -> None:
    """Reads qemu-img's progress lines from `out` until it closes it."""
    buffer, percent, moved = b"", 0.0, time.monotonic()
    while True:
        ready, _, _ = select.select([out], [], [], POLL_INTERVAL)
        if ready:
            chunk = os.read(out, 4096)
            if not chunk:
                return
            buffer = (buffer + chunk)[-256:]
            found = _PROGRESS.findall(buffer)
            if found and float(found[-1]) > percent:
                percent, moved = float(found[-1]), time.monotonic()
        if not progress(percent):
            raise Stopped("the conversion was stopped")
        if time.monotonic() - moved > stall:
            raise CephError(f"qemu-img made no progress for {stall:g} s: it was stopped")
