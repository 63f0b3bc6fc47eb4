"""The `provisioner` section of the node configuration: what the VMs `pvc provisioner create`
builds look like where they depend on the nodes rather than on a profile.

- `domain_type`: kvm on real hypervisors; qemu (TCG emulation) where /dev/kvm cannot run
  guests (the test machines).
- `console_log_directory`: where each built VM's serial console is logged
  (`<directory>/<uuid>.log`, appended to by whichever node runs it), which `pvc vm log` reads.
- `work_directory`: where a create's install script gets its work folder, with the sparse
  files its disks' filesystems are built in (as large as the disks, written only where
  used): a disk-backed folder where /tmp is a tmpfs. Default: the system's temporary folder.
- `script_timeout`: seconds an install script may take, all phases together.
"""

from typing import Any

from pvc.config_values import between, check_absolute_path

DOMAIN_TYPES = ("kvm", "qemu")


def _domain_type(value: Any) -> str | None:
    return None if value in DOMAIN_TYPES else f"must be one of {', '.join(DOMAIN_TYPES)}"


def spec(field: Any) -> dict[str, Any]:
    return {
        "domain_type": field(
            str, "kvm", "libvirt domain type of provisioned VMs: kvm, or qemu (TCG).", _domain_type
        ),
        "console_log_directory": field(
            str,
            "/var/log/libvirt/qemu",
            "Where provisioned VMs' serial consoles are logged (<uuid>.log), for pvc vm log.",
            check_absolute_path,
        ),
        "work_directory": field(
            (str, type(None)),
            None,
            "Where install scripts build their disks' filesystems; default: the system's temp.",
            check_absolute_path,
        ),
        "script_timeout": field(
            (int, float), 3600.0, "Seconds an install script may take.", between(1, 86400)
        ),
    }
