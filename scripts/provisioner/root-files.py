"""An install script that writes files into the VM's root filesystem.

Add it with `pvc provisioner script add root-files scripts/provisioner/root-files.py` and name
it in a profile whose storage template mounts a disk at "/" (a new filesystem, or a clone of
a bootable image). It writes /etc/hostname (the VM's name), /etc/pvc-guest/provisioned
("provisioned <vm_name> by <profile>") and, for each argument (`--arg key=value` at create,
or the profile's), /etc/pvc-guest/arg-<key> holding the value. VMBuilder is given to the
script by pvc (no import).
"""

import re


class VMBuilderScript(VMBuilder):  # noqa: F821 (VMBuilder is in the script's globals)
    def setup(self):
        for key in self.arguments:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
                raise ValueError(f"argument name '{key}' cannot be a file name")

    def prepare(self):
        if not any(disk.get("mountpoint") == "/" for disk in self.disks):
            raise ValueError("the profile's storage template mounts no disk at '/'")
        super().prepare()

    def install(self):  # self.write, never open(): the image's links resolve on the host
        self.write("/etc/hostname", f"{self.vm_name}\n")
        provisioned = f"provisioned {self.vm_name} by {self.profile}\n"
        self.write("/etc/pvc-guest/provisioned", provisioned)
        for key, value in sorted(self.arguments.items()):
            self.write(f"/etc/pvc-guest/arg-{key}", f"{value}\n")
        self.log(f"wrote /etc/hostname and {len(self.arguments) + 1} file(s) in /etc/pvc-guest")
