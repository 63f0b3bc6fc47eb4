"""qemu-img on RBD images: the size a disk image holds and its conversion to raw.

The one tool pvc runs for images (librbd has no qcow2 or vmdk reader). Images are named as
QEMU's rbd protocol does, `rbd:POOL/IMAGE:conf=CONF:id=CLIENT:keyring=KEYRING`: the cephx key
stays in its keyring file, never in argv. qemu-img's own words are kept for the user ("Image is
not in qcow2 format"), without the long `Could not open 'rbd:...'` prefix. Every run is
bounded: `info` by INFO_TIMEOUT, `convert` by the caller's `cancelled` check between its
progress lines (it is killed when that says so).
"""

import json
import re
import subprocess
from collections.abc import Callable

from pvc.drivers.ceph import Ceph, CephError

INFO_TIMEOUT = 60.0
FORMATS = ("raw", "qcow2", "vmdk")
_OPEN_PREFIX = re.compile(r"^qemu-img: Could not open '[^']*': ")
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


class QemuImgError(CephError):
    """qemu-img refused an image (its words); a 400-class problem of the upload itself."""

    http_status = 400


def rbd_spec(ceph: Ceph, pool: str, image: str) -> str:
    return f"rbd:{pool}/{image}:conf={ceph.config_file}:id={ceph.client}:keyring={ceph.keyring}"


def _words(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip().splitlines()
    line = text[-1] if text else "qemu-img failed"
    return _OPEN_PREFIX.sub("", line).removeprefix("qemu-img: ")


def virtual_size(ceph: Ceph, pool: str, image: str, image_format: str) -> int:
    """The disk size the image in `image_format` holds; QemuImgError when it is not one."""
    command = ["qemu-img", "info", "-f", image_format, "--output", "json",
               rbd_spec(ceph, pool, image)]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, timeout=INFO_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise CephError(f"qemu-img info did not answer within {INFO_TIMEOUT:g} s") from None
    if done.returncode != 0:
        raise QemuImgError(f"not a {image_format} disk image: {_words(done.stderr)}")
    return int(json.loads(done.stdout)["virtual-size"])


def convert(
    ceph: Ceph,
    pool: str,
    source: str,
    image_format: str,
    target: str,
    progress: Callable[[float], bool],
) -> None:
    """Writes the disk held by `source` (in `image_format`) into the existing raw image
    `target` (`-n`: pvc made it, with its features). `progress(percent)` is called as qemu-img
    goes; when it returns False, qemu-img is killed and CephError raised."""
    command = ["qemu-img", "convert", "-p", "-n", "-f", image_format, "-O", "raw",
               rbd_spec(ceph, pool, source), rbd_spec(ceph, pool, target)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    buffer = b""
    while chunk := process.stdout.read1(4096):
        buffer = (buffer + chunk)[-256:]
        found = _PROGRESS.findall(buffer)
        if found and not progress(float(found[-1])):
            process.kill()
            process.wait()
            raise CephError("the conversion was stopped")
    stderr = process.stderr.read()
    if process.wait() != 0:
        raise QemuImgError(f"qemu-img could not convert the {image_format} image: {_words(stderr)}")
