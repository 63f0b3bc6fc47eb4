"""The `provisioner` section of the node configuration: what the VMs `pvc provisioner create`
builds look like where they depend on the nodes rather than on a profile.

- `domain_type`: kvm on real hypervisors; qemu (TCG emulation) where /dev/kvm cannot run
  guests (the test machines).
- `console_log_directory`: where each built VM's serial console is logged
  (`<directory>/<uuid>.log`, appended to by whichever node runs it), which `pvc vm log` reads.
"""

from typing import Any

from pvc.config_values import check_absolute_path

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
    }
