"""Volumes prepared without kernel RBD: filesystems in sparse files, loop mounts, and RBD
images exported into files and imported back.

pvc's nodes (and many containers) cannot map an RBD image in the kernel (no rbd or nbd
module), so an install script never works on a mapped image. It works on a plain file
instead: `make_filesystem` builds a filesystem in a sparse file of the disk's size, or
`export_image` copies a volume (a clone of a base image) into one; `mount` loop-mounts the
file (`mount -o loop`, which a container with /dev/loop-control can do) and `unmount` releases
it and its loop device. `import_image` then writes the file into the volume through librbd.

Both copies go in CHUNK-sized pieces (an RBD object) and keep what is sparse sparse: an export
reads only the extents the image (with its parent) has data in and leaves holes in the file;
an import writes only the chunks that differ from what the image holds, read back first, so a
clone whose install changed a few files keeps sharing the rest with its parent.

Every failure is a PvcError with the tool's own words (mkfs, mount, umount, librbd), on one
line. Callers pass the Ceph connection (pvc.drivers.ceph.Ceph).
"""

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

from pvc.drivers.ceph import Ceph
from pvc.drivers.ceph_images import opened_image
from pvc.errors import InvalidInput, PvcError

CHUNK = 4 * 1024 * 1024  # librbd's default object size
ZERO = bytes(CHUNK)
MKFS_TIMEOUT = 900.0
MOUNT_TIMEOUT = 120.0
# The flag each mkfs needs to write into a regular file without asking (mkfs.ext* asks
# "proceed anyway?" for a file; xfs and btrfs refuse a target that holds a filesystem).
FORCE_FLAGS = {"ext2": "-F", "ext3": "-F", "ext4": "-F", "xfs": "-f", "btrfs": "-f"}
_BANNER = re.compile(r"^\S+ \d+\.\d+(\.\d+)* \(")  # "mke2fs 1.47.0 (5-Feb-2023)"
_FILESYSTEM_NAME = re.compile(r"^[a-z0-9]{1,16}$")


def _run(command: list[str], timeout: float, cwd: str | None = None) -> str:
    """Runs a tool; its stdout, or PvcError with its complaint (see _complaint)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except FileNotFoundError:
        raise PvcError(f"{command[0]} is not installed on this node") from None
    except subprocess.TimeoutExpired:
        raise PvcError(f"{command[0]} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        raise PvcError(_complaint(command[0], done.stderr or done.stdout))
    return done.stdout


def _complaint(tool: str, output: str) -> str:
    """The tool's first line that says what is wrong (not its version banner), prefixed
    with the tool's name unless it names itself: what is left after a usage text or a hint
    ("dmesg(1) may have more information")."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    words = next((line for line in lines if not _BANNER.match(line)), "failed")
    return words if words.startswith(f"{tool}:") else f"{tool}: {words}"


# --- filesystems and loop mounts -------------------------------------------------------------


def require_filesystem(filesystem: str) -> str:
    """The mkfs tool of `filesystem` (ext4, xfs, ...); InvalidInput when this node has none."""
    tool = f"mkfs.{filesystem}"
    if not _FILESYSTEM_NAME.match(filesystem or "") or shutil.which(tool) is None:
        raise InvalidInput(f"filesystem '{filesystem}' is not known on this node (no {tool})")
    return tool


def make_filesystem(path: str, size: int, filesystem: str, args: Sequence[str] = ()) -> None:
    """A new sparse file of `size` bytes at `path` holding a `filesystem` made by
    `mkfs.<filesystem> [force flag] [args] path`, run in the file's folder: a relative path
    in `args` (no '/': pvc.ops.provisioner_template_checks) can name nothing of the host's."""
    tool = require_filesystem(filesystem)
    with open(path, "xb") as file:
        file.truncate(size)
    force = [FORCE_FLAGS[filesystem]] if filesystem in FORCE_FLAGS else []
    _run([tool, *force, *args, path], MKFS_TIMEOUT, cwd=os.path.dirname(os.path.abspath(path)))


def mount(path: str, directory: str) -> None:
    """Loop-mounts the filesystem in the file `path` at `directory` (which must exist), without
    its device nodes or set-uid bits (a guest image is not trusted on the node)."""
    _run(["mount", "-o", "loop,nodev,nosuid", path, directory], MOUNT_TIMEOUT)


def _unescape(field: str) -> str:
    """A path as /proc/self/mounts writes it (space, tab, newline, backslash octal-escaped)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[tuple[str, str]]:
    """(device, mountpoint) of each mount this process sees, in mount order."""
    with open("/proc/self/mounts", encoding="utf-8") as file:
        fields = [line.split() for line in file]
    return [(_unescape(f[0]), _unescape(f[1])) for f in fields if len(f) >= 2]


def mounted_under(directory: str) -> list[str]:
    """The mountpoints at or below `directory`, last mounted first (the order to unmount)."""
    top = os.path.realpath(directory)
    found = [point for _, point in mounts() if point == top or point.startswith(top + "/")]
    return list(reversed(list(dict.fromkeys(found))))


def unmount(directory: str) -> None:
    """Unmounts `directory` and frees its loop device. A mount still busy (a process of the
    script left running in it) is detached lazily: it goes when that process does."""
    point = os.path.realpath(directory)
    devices = [device for device, where in mounts() if where == point]
    try:
        _run(["umount", point], MOUNT_TIMEOUT)
    except PvcError:
        if point not in [where for _, where in mounts()]:
            raise
        _run(["umount", "--lazy", point], MOUNT_TIMEOUT)
    for device in devices:
        if device.startswith("/dev/loop"):
            detach_loop(device)


def detach_loop(device: str) -> None:
    """Frees a loop device (mount's autoclear usually has already); gone is fine."""
    done = subprocess.run(
        ["losetup", "-d", device], capture_output=True, text=True, timeout=MOUNT_TIMEOUT
    )
    still = os.path.exists(f"/sys/block/{os.path.basename(device)}/loop/backing_file")
    if done.returncode != 0 and still:
        words = (done.stderr.strip() or "failed").splitlines()[-1]
        raise PvcError(f"losetup -d {device}: {words}")


def loops_of(paths: list[str]) -> list[str]:
    """The loop devices whose backing file is one of `paths` (left by a killed process)."""
    wanted = {os.path.realpath(path) for path in paths}
    found = []
    for name in sorted(os.listdir("/sys/block")):
        backing = f"/sys/block/{name}/loop/backing_file"
        try:
            with open(backing, encoding="utf-8") as file:
                target = file.read().strip()
        except OSError:
            continue
        if target.removesuffix(" (deleted)") in wanted:
            found.append(f"/dev/{name}")
    return found


# --- RBD images and files ----------------------------------------------------------------


def _extents(image: Any, size: int) -> Iterator[tuple[int, int]]:
    """(offset, length) of the CHUNK-aligned pieces in which the image, or its parent, may
    hold data (librbd's diff against nothing, by whole objects)."""
    found: list[tuple[int, int]] = []

    def seen(offset: int, length: int, exists: bool) -> int:
        if exists:
            found.append((offset, length))
        return 0

    image.diff_iterate(0, size, None, seen, include_parent=True, whole_object=True)
    for offset, length in found:
        start = offset - offset % CHUNK
        for piece in range(start, min(offset + length, size), CHUNK):
            yield piece, min(CHUNK, size - piece)


def _data_ranges(image: Any, size: int) -> list[tuple[int, int]]:
    return sorted(dict.fromkeys(_extents(image, size)))


def _file_chunks(fd: int, length: int) -> set[int]:
    """The CHUNK offsets of the file that hold data (SEEK_DATA/SEEK_HOLE): the holes of a
    sparse file of many GiB are skipped without reading them."""
    found: set[int] = set()
    offset = 0
    while offset < length:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after offset
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        found.update(range(start - start % CHUNK, end, CHUNK))
        offset = end
    return found


def export_image(ceph: Ceph, pool: str, volume: str, path: str) -> int:
    """Copies the volume into a new sparse file at `path` of the volume's size, skipping the
    zero chunks; the bytes written."""
    written = 0
    with opened_image(ceph, pool, volume, read_only=True) as image:
        size = image.size()
        with open(path, "xb") as file:
            file.truncate(size)
            for offset, length in _data_ranges(image, size):
                data = image.read(offset, length)
                if data != ZERO[:length]:
                    file.seek(offset)
                    file.write(data)
                    written += length
    return written


def import_image(ceph: Ceph, pool: str, volume: str, path: str) -> int:
    """Writes the file at `path` into the volume, only the chunks that differ from what the
    volume holds (only chunks where either holds data are read); the bytes written. A file
    larger than the volume is refused; a smaller one leaves the rest of the volume as it is."""
    with opened_image(ceph, pool, volume) as image:
        size = image.size()
        length = os.path.getsize(path)
        if length > size:
            raise PvcError(
                f"{path} ({length} bytes) does not fit in volume '{pool}/{volume}' ({size} bytes)"
            )
        holding = {offset for offset, _ in _data_ranges(image, size)}
        written = 0
        with open(path, "rb") as file:
            for offset in sorted(holding.union(_file_chunks(file.fileno(), length))):
                if offset >= length:
                    break
                file.seek(offset)
                data = file.read(min(CHUNK, length - offset))
                if offset in holding:
                    same = image.read(offset, len(data)) == data
                else:
                    same = data == ZERO[: len(data)]
                if not same:
                    image.write(data, offset)
                    written += len(data)
        image.flush()
    return written
