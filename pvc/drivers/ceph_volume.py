"""This node's OSD devices: checking a disk is free, making it a bluestore OSD, wiping it.

The node daemon runs these for its own OSD jobs (pvc.node.osd_jobs) and its OSD controller
(pvc.node.osds); contract: pvc.drivers.contracts.OsdDeviceDriver.

- `check_free`: a whole block device (not a partition, not read-only, not empty) that nothing
  uses: not mounted, not swap, no holders (device mapper, md), no partitions, no signature
  `wipefs` knows (a filesystem, a partition table, a bluestore label), and the kernel lets us
  open it exclusively. Each refusal says why in one line ("not a block device", "in use: has
  an ext4 filesystem").
- `prepare`: `ceph-volume raw prepare --bluestore --data DEV` (raw mode: these machines have
  no device mapper, so no LVM), always in a private mount namespace (`unshare -m`): the tmpfs
  it mounts on /var/lib/ceph/osd/ceph-N, which a failed prepare leaves mounted, goes with that
  namespace. ceph-volume reads the bootstrap-osd key only from
  /var/lib/ceph/bootstrap-osd/ceph.keyring; when `ceph.bootstrap_keyring` names another file,
  that private namespace gets a tmpfs over the folder holding a copy of it, so the host's copy
  is never written. The OSD's id and UUID come from its bluestore label afterwards.
- `activate`: `ceph-volume raw activate --device DEV --no-systemd`, in the daemon's own mount
  namespace (where its OSD processes start): the tmpfs OSD folder rebuilt from the label. A
  daemon in a new mount namespace (after a restart) activates again; one already mounted with
  the right OSD UUID is left as it is.
- `zap`: `wipefs -a` and zeros over the first 10 MiB (`ceph-volume lvm zap` reports success
  on a raw device and wipes nothing).
Every command runs with CEPH_CONF set to `ceph.config_file` and `--cluster ceph` semantics (the
file need not be named ceph.conf), within a timeout; a failure is a DeviceError with the
command's last words on one line. The bluestore label holds the OSD's key: it is never logged
or returned.
"""

import contextlib
import errno
import json
import logging
import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any

from pvc.drivers.contracts import DeviceError, DeviceInUse, PreparedOsd

log = logging.getLogger("pvc.drivers.ceph_volume")

DEFAULT_BOOTSTRAP_KEYRING = "/var/lib/ceph/bootstrap-osd/ceph.keyring"
OSD_ROOT = Path("/var/lib/ceph/osd")
ZAP_BYTES = 10 * 1024 * 1024
MIN_DEVICE_BYTES = 2 * 1024**3  # bluestore's own metadata needs about 1 GiB
PREPARE_TIMEOUT = 300.0
COMMAND_TIMEOUT = 60.0
# In the private mount namespace of a prepare: the given bootstrap keyring ($1) where
# ceph-volume looks for it, on a tmpfs of its own, then ceph-volume itself ("$@").
PRIVATE_KEYRING = (
    'd=$(dirname "$0") && mount -t tmpfs -o mode=0755,size=1m pvc-bootstrap "$d" && '
    'install -m 0600 "$1" "$0" && shift && exec "$@"'
)
CEPHX_KEY = re.compile(r"AQ[A-Za-z0-9+/]{36}==")
# Lines of ceph-volume's output that never say why: its trace, a crash's backtrace and notes.
NOISE = re.compile(
    r"Traceback|selinux|^Running command:|^\d+: |^NOTE: a copy of the executable|^in thread "
    r"|^ceph version "
)
SIGNATURE_NAMES = {
    "ceph_bluestore": "a Ceph bluestore label (it is an OSD's disk)",
    "LVM2_member": "an LVM physical volume",
    "linux_raid_member": "a software RAID member",
    "swap": "a swap signature",
    "dos": "a DOS partition table",
    "gpt": "a GPT partition table",
    "PMBR": "a protective MBR (GPT)",
}


def run(
    argv: list[str],
    timeout: float,
    env: dict[str, str] | None = None,
    what: str = "",
    quiet: bool = False,
) -> str:
    """Runs a command (`what` names it in errors; by default its first words); its standard
    output, or DeviceError with its reason. A failure's output goes to the log, unless
    `quiet` (a failure that is an answer: no label)."""
    what = what or " ".join(argv[:2])
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise DeviceError(f"{what} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise DeviceError(f"cannot run {argv[0]}: {exc.strerror}") from None
    if result.returncode != 0:
        output = scrub(result.stdout + result.stderr).splitlines()
        if not quiet:
            log.warning(
                "%s failed (exit %d):\n%s", what, result.returncode, "\n".join(output[-40:])
            )
        raise DeviceError(f"{what} failed: {reason(scrub(result.stderr or result.stdout))}")
    return result.stdout


def scrub(text: str) -> str:
    """`text` without cephx keys (an OSD's key is in its label; ceph-volume handles several)."""
    return CEPHX_KEY.sub("<key>", text)


def reason(output: str) -> str:
    """The line of a command's output that says why it failed: the last meaningful one, or
    for ceph-volume the last before its rollback (whose own failure ends the output)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "will rollback" in line or "Was unable to complete" in line:
            lines = lines[:index]
            break
    lines = [line.removeprefix("-->").strip().removeprefix("stderr:").strip() for line in lines]
    lines = [line for line in lines if line and not NOISE.search(line)]
    return lines[-1] if lines else "no reason given"


class CephVolume:
    """OSD devices through ceph-volume on this node, for the Ceph of `config_file`."""

    def __init__(self, config_file: str, bootstrap_keyring: str = DEFAULT_BOOTSTRAP_KEYRING):
        self.config_file = config_file
        self.bootstrap_keyring = bootstrap_keyring

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CEPH_CONF": self.config_file}

    # --- checks -------------------------------------------------------------------------------

    def check_free(self, device: str) -> int:
        """Refuses (DeviceError) what cannot become an OSD; the device's size in bytes."""
        try:
            info = os.stat(device)
        except FileNotFoundError:
            raise DeviceError(f"{device} does not exist") from None
        except OSError as exc:
            raise DeviceError(f"cannot look at {device}: {exc.strerror}") from None
        if not stat.S_ISBLK(info.st_mode):
            raise DeviceError(f"{device} is not a block device")
        number = f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
        sysfs = Path("/sys/dev/block", number).resolve()
        if (sysfs / "partition").exists():
            raise DeviceError(f"{device} is a partition: give the whole disk")
        size = int(_read(sysfs / "size") or 0) * 512
        if size < MIN_DEVICE_BYTES:
            raise DeviceError(f"{device} is too small for an OSD ({size} bytes; at least 2 GiB)")
        if _read(sysfs / "ro") == "1":
            raise DeviceError(f"{device} is read-only")
        self._check_unused(device, sysfs, number)
        return size

    def _check_unused(self, device: str, sysfs: Path, number: str) -> None:
        holders = sorted(p.name for p in (sysfs / "holders").iterdir())
        if holders:
            raise DeviceInUse(f"{device} is in use: held by {', '.join(holders)}")
        partitions = sorted(p.name for p in sysfs.iterdir() if (p / "partition").exists())
        if partitions:
            raise DeviceInUse(f"{device} is in use: has partitions {', '.join(partitions)}")
        for line in _read(Path("/proc/self/mountinfo")).splitlines():
            fields = line.split()
            if len(fields) > 4 and fields[2] == number:
                raise DeviceInUse(f"{device} is in use: mounted at {fields[4]}")
        real = os.path.realpath(device)
        for line in _read(Path("/proc/swaps")).splitlines()[1:]:
            if line.split() and os.path.realpath(line.split()[0]) == real:
                raise DeviceInUse(f"{device} is in use: it is swap space")
        found = self.signatures(device)
        if found:
            names = ", ".join(
                dict.fromkeys(
                    SIGNATURE_NAMES.get(t, f"{_article(t)} {t} filesystem") for t in found
                )
            )
            raise DeviceInUse(
                f"{device} is in use: has {names}; if nothing on it is needed, "
                f"wipe it first (wipefs -a {device})"
            )
        try:
            os.close(os.open(device, os.O_RDONLY | os.O_EXCL))
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise DeviceInUse(f"{device} is in use: another program holds it") from None
            raise DeviceError(f"cannot open {device}: {exc.strerror}") from None

    def signatures(self, device: str) -> list[str]:
        """The types of the signatures `wipefs` finds on the device (it only reads)."""
        out = run(["wipefs", "--json", device], COMMAND_TIMEOUT)
        if not out.strip():
            return []
        try:
            return [s["type"] for s in json.loads(out).get("signatures", [])]
        except (ValueError, KeyError, TypeError):
            raise DeviceError(f"cannot read wipefs's answer for {device}") from None

    def label(self, device: str) -> dict[str, Any] | None:
        """The device's bluestore label without the OSD's key; None if it has none."""
        try:
            show = ["ceph-bluestore-tool", "show-label", "--dev", device]
            out = run(show, COMMAND_TIMEOUT, quiet=True)
        except DeviceError:
            return None
        try:
            found = json.loads(out).get(device) or next(iter(json.loads(out).values()))
        except (ValueError, StopIteration, AttributeError):
            return None
        return {key: value for key, value in found.items() if key != "osd_key"}

    # --- making and unmaking an OSD -----------------------------------------------------------

    def prepare(self, device: str) -> PreparedOsd:
        """Makes the (checked) device a bluestore OSD of the cluster: its id and UUID."""
        command = ["ceph-volume", "--cluster", "ceph", "raw", "prepare", "--bluestore",
                   "--data", device]  # fmt: skip
        if os.path.realpath(self.bootstrap_keyring) != DEFAULT_BOOTSTRAP_KEYRING:
            if not os.access(self.bootstrap_keyring, os.R_OK):
                raise DeviceError(f"cannot read the bootstrap keyring {self.bootstrap_keyring}")
            command = ["sh", "-c", PRIVATE_KEYRING, DEFAULT_BOOTSTRAP_KEYRING,
                       self.bootstrap_keyring, *command]  # fmt: skip
        private = ["unshare", "--mount", "--propagation", "private", *command]
        run(private, PREPARE_TIMEOUT, self.env, "ceph-volume raw prepare")
        label = self.label(device)
        if not label or "whoami" not in label:
            raise DeviceError(f"ceph-volume prepared {device} but left no bluestore label")
        return PreparedOsd(int(label["whoami"]), label["osd_uuid"])

    def activate(self, device: str, osd_id: int, osd_uuid: str) -> None:
        """Mounts the OSD's folder (a tmpfs filled from the label) in this mount namespace."""
        folder = OSD_ROOT / f"ceph-{osd_id}"
        if _mounted(folder):
            if _read(folder / "fsid") == osd_uuid:
                return
            self.deactivate(osd_id)  # an earlier OSD of that id's folder
        label = self.label(device)
        if label is None or label.get("osd_uuid") != osd_uuid:
            raise DeviceError(f"{device} is no longer the disk of osd.{osd_id} (its label changed)")
        command = ["ceph-volume", "--cluster", "ceph", "raw", "activate", "--device", device,
                   "--no-systemd"]  # fmt: skip
        run(command, COMMAND_TIMEOUT, self.env, "ceph-volume raw activate")

    def deactivate(self, osd_id: int) -> None:
        """Unmounts the OSD's folder here, if mounted, and removes it."""
        folder = OSD_ROOT / f"ceph-{osd_id}"
        while _mounted(folder):
            run(["umount", str(folder)], COMMAND_TIMEOUT)
        with contextlib.suppress(OSError):  # absent, or not empty (not ours to remove)
            folder.rmdir()

    def zap(self, device: str) -> None:
        """Wipes every signature and the first 10 MiB: the disk is blank again."""
        run(["wipefs", "--all", device], COMMAND_TIMEOUT)
        try:
            with open(device, "r+b", buffering=0) as disk:
                zeros = bytes(1024 * 1024)
                for _ in range(ZAP_BYTES // len(zeros)):
                    disk.write(zeros)
                os.fsync(disk.fileno())
        except OSError as exc:
            raise DeviceError(f"cannot wipe {device}: {exc.strerror}") from None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _mounted(folder: Path) -> bool:
    target = str(folder)
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == target:
            return True
    return False


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
