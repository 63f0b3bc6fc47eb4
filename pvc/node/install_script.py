"""Install scripts: the `VMBuilder` base class a profile's script subclasses.

How to write one
----------------
A script is Python text defining `class VMBuilderScript(VMBuilder)`. `VMBuilder` is already
in the script's globals (no import); the script may import anything the node's Python has.
Add it with `pvc provisioner script add NAME FILE` and name it in a profile
(`pvc provisioner profile add ... --script NAME --arg key=value`). `pvc provisioner create`
runs it on the node that runs the create, as root, in a process of its own, phase by phase:

    setup()    check the arguments, the disks and networks; nothing is written yet
    create()   returns the domain XML (the base returns self.xml, the XML pvc built)
    prepare()  the base makes each disk's filesystem and mounts the disks under self.root
    install()  the script's work: write into self.root (the base does nothing)
    cleanup()  the base unmounts and writes the prepared disks back into their volumes

cleanup() runs even when an earlier phase failed (then it only unmounts: the create is
undone anyway). A script that overrides prepare() or cleanup() calls super() first (prepare)
or last (cleanup), or does the whole work itself. An exception ends the create; its message,
on one line and with the phase's name, is what the user sees, so raise with words they can
act on (`raise ValueError("argument 'release' is required")`). print() and self.log() lines
go to the node daemon's log.

What a script is given (attributes):
    vm_name, vm_uuid, profile   the new VM's name and UUID, the profile's name
    arguments   dict of str: the profile's arguments, overridden by `create --arg k=v`
    disks       list of dicts in disk order: disk_id ("vda"), pool, volume (the VM's RBD
                volume, already created or cloned), size (bytes), filesystem (or None),
                filesystem_args (list), mountpoint (or None), source_volume (or None)
    networks    list of dicts in NIC order: vni, mac, bridge
    xml         the domain XML pvc built
    root        the directory where the disk mounted at "/" is (after prepare())

The volumes are never mapped in the kernel (these nodes cannot): prepare() works on sparse
files (pvc.drivers.volume_images): a disk with a filesystem gets a new one made in a file of
its size; a disk with a mountpoint but no filesystem (a clone of a base image) is exported
into a file. The files with a mountpoint are loop-mounted at root + mountpoint, "/" first and
deeper ones after their parents; cleanup() writes each file back, only the chunks that
changed, so a clone keeps sharing the rest with its base image.

Writing into the VM
-------------------
The image's symbolic links are whatever its maker chose, and they resolve on the host, where
the script runs as root: open(self.root + "/etc/hostname", "w") on an image whose
/etc/hostname links to /etc/passwd overwrites the host's. So never open() paths under
self.root yourself: use self.write("/etc/hostname", text) (a path in the VM), which makes the
missing folders and refuses a path through a link, or a regular file's place taken by
anything else. (A tool run with `chroot self.root` is not concerned: links resolve inside.)
"""

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from typing import Any

from pvc.drivers import volume_images
from pvc.drivers.ceph import Ceph
from pvc.errors import PvcError
from pvc.ops import provisioner_records

# The checks `script add` makes, made again before a script runs (it may predate them).
check = provisioner_records.check_script
CLASS_NAME = provisioner_records.SCRIPT_CLASS
PHASES = ("setup", "create", "prepare", "install", "cleanup")


def load(name: str, text: str) -> type["VMBuilder"]:
    """Runs the script's text with VMBuilder in its globals; its VMBuilderScript class."""
    check(name, text)
    namespace: dict[str, Any] = {"VMBuilder": VMBuilder, "__name__": f"pvc_install_{name}"}
    try:
        exec(compile(text, f"<install script {name}>", "exec"), namespace)
    except Exception as exc:
        raise PvcError(f"install script '{name}' does not load: {one_line(exc)}") from None
    found = namespace.get(CLASS_NAME)
    if not (isinstance(found, type) and issubclass(found, VMBuilder)):
        raise PvcError(f"install script '{name}': {CLASS_NAME} is not a subclass of VMBuilder")
    return found


def one_line(exc: BaseException) -> str:
    """An exception as the user reads it: its own message on one line (its type's name when
    the message alone would not say what happened)."""
    if isinstance(exc, PvcError):
        text = exc.message
    else:
        text = str(exc)
        if not text or isinstance(exc, KeyError | AttributeError | NameError | TypeError):
            text = f"{type(exc).__name__}: {text}".rstrip(": ")
    return " ".join(text.split())


class VMBuilder:
    """The base of install scripts: the VM's facts as attributes, five phases to override."""

    def __init__(self, context: dict[str, Any], work: str, ceph: Ceph | None, log: Callable):
        self.vm_name: str = context["vm_name"]
        self.vm_uuid: str = context["vm_uuid"]
        self.profile: str = context["profile"]
        self.arguments: dict[str, str] = dict(context.get("arguments") or {})
        self.disks: list[dict[str, Any]] = list(context.get("disks") or [])
        self.networks: list[dict[str, Any]] = list(context.get("networks") or [])
        self.xml: str = context["xml"]
        self.root = os.path.join(work, "root")
        self.failed: str | None = None  # the phase that failed, set before cleanup()
        self._work = work
        self._ceph = ceph
        self._log = log
        self._prepared: list[tuple[dict[str, Any], str]] = []  # (disk, file)
        self._mounted: list[str] = []

    def log(self, message: str) -> None:
        """A line in the node daemon's log, attributed to this script."""
        self._log(str(message))

    # --- phases -------------------------------------------------------------------------

    def setup(self) -> None:
        """Checks before anything is written (the base checks nothing)."""

    def create(self) -> str:
        """The domain XML to define (the base: the XML pvc built)."""
        return self.xml

    def prepare(self) -> None:
        """Each disk with a filesystem gets it made in a sparse file; a disk with a mountpoint
        and no filesystem is exported into one; the files with a mountpoint are mounted at
        root + mountpoint, shallowest first."""
        for disk in self.disks:
            if disk.get("filesystem") or disk.get("mountpoint"):
                path = os.path.join(self._work, f"{disk['disk_id']}.img")
                try:
                    self._prepare_file(disk, path)
                except PvcError as exc:
                    raise PvcError(f"{disk['disk_id']}: {exc.message}") from None
                self._prepared.append((disk, path))
        mounted = [(disk, path) for disk, path in self._prepared if disk.get("mountpoint")]
        os.makedirs(self.root, exist_ok=True)
        root = os.path.realpath(self.root)
        for disk, path in sorted(mounted, key=lambda item: _depth(item[0]["mountpoint"])):
            try:  # a mounted image's links resolve on the host: the walk refuses them
                parts = _parts(disk["mountpoint"])
                os.close(_open_folder(root, parts))
            except ValueError as exc:
                raise PvcError(f"mountpoint '{disk['mountpoint']}' refused: {exc}") from None
            directory = os.path.join(root, *parts)
            volume_images.mount(path, directory)
            self._mounted.append(directory)

    def _prepare_file(self, disk: dict[str, Any], path: str) -> None:
        if disk.get("filesystem"):
            self.log(f"making {disk['filesystem']} for {disk['disk_id']}")
            args = disk.get("filesystem_args") or []
            volume_images.make_filesystem(path, int(disk["size"]), disk["filesystem"], args)
        else:
            self.log(f"reading volume {disk['pool']}/{disk['volume']} for {disk['disk_id']}")
            volume_images.export_image(self._require_ceph(), disk["pool"], disk["volume"], path)

    def install(self) -> None:
        """The script's work in self.root (the base does nothing)."""

    def write(self, path: str, text: str) -> None:
        """Writes `text` into the file `path` of the VM ("/etc/hostname"), making its missing
        folders; ValueError for a path out of the VM, through a symbolic link, or onto
        anything but a regular file (see "Writing into the VM" in the module)."""
        parts = _parts(path)
        where = "/" + "/".join(parts)
        if not parts:
            raise ValueError(f"'{path}' names no file")
        if not os.path.ismount(self.root):
            raise ValueError(f"cannot write '{where}': no disk is mounted at '/' (write() is "
                             "for install(), after prepare())")  # fmt: skip
        folder = _open_folder(os.path.realpath(self.root), parts[:-1])
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(parts[-1], flags, 0o644, dir_fd=folder)  # NONBLOCK: a FIFO fails
        except OSError as exc:
            raise _refusal(where, exc, folder, parts[-1]) from None
        finally:
            os.close(folder)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a device node of the image
                raise _not_a_file(where)
            file.write(text)

    def cleanup(self) -> None:
        """Unmounts what prepare() mounted, deepest first, all of them even if one fails;
        then, unless a phase failed, writes each prepared file into its volume."""
        errors = []
        while self._mounted:
            directory = self._mounted.pop()
            try:
                volume_images.unmount(directory)
            except PvcError as exc:
                errors.append(exc.message)
        if errors:
            raise PvcError("; ".join(errors))
        if self.failed is not None:
            return
        for disk, path in self._prepared:
            self.log(f"writing {disk['disk_id']} into volume {disk['pool']}/{disk['volume']}")
            written = volume_images.import_image(
                self._require_ceph(), disk["pool"], disk["volume"], path
            )
            self.log(f"{disk['disk_id']}: {written} bytes written")
        self._prepared.clear()

    def _require_ceph(self) -> Ceph:
        if self._ceph is None:
            raise PvcError("this node has no Ceph access (ceph.enabled is off)")
        return self._ceph


def _parts(path: str) -> list[str]:
    """The names along `path`, a path in the VM; ValueError if `..` would take it out."""
    normal = os.path.normpath(os.path.join("/root", path.lstrip("/")))
    if normal != "/root" and not normal.startswith("/root/"):
        raise ValueError(f"'{path}' is outside the VM's root")
    return normal.split("/")[2:]


def _open_folder(root: str, parts: list[str]) -> int:
    """A descriptor of the folder root/parts..., each missing one made: one name at a time,
    relative to its parent's descriptor, never following a symbolic link (ValueError)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for index, part in enumerate(parts):
            with contextlib.suppress(FileExistsError):  # mkdir never follows a link
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise _refusal("/" + "/".join(parts[: index + 1]), exc, fd, part) from None
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refusal(where: str, exc: OSError, folder: int, name: str) -> ValueError:
    """Why `name` (`where` in the VM) in the folder `folder` could not be opened."""
    try:
        mode = os.lstat(name, dir_fd=folder).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode) or exc.errno == errno.ELOOP:
        return ValueError(f"'{where}' is a symbolic link in the VM's filesystem (not followed: "
                          "it would resolve on the host)")  # fmt: skip
    if exc.errno == errno.ENOTDIR:
        return ValueError(f"'{where}' is not a folder in the VM's filesystem")
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO, a socket, a device
        return _not_a_file(where)
    return ValueError(f"cannot open '{where}' in the VM's filesystem: {exc.strerror}")


def _not_a_file(where: str) -> ValueError:
    return ValueError(f"'{where}' is not a regular file in the VM's filesystem")


def _depth(mountpoint: str) -> int:
    return len([part for part in mountpoint.split("/") if part])
