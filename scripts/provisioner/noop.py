"""An install script that changes nothing: the VM is built exactly as its profile says.

Add it with `pvc provisioner script add noop scripts/provisioner/noop.py` and name it in a
profile (`--script noop`). Every phase is the base class's (pvc.node.install_script): the
disks with a filesystem or a mountpoint are still prepared and written back, untouched.
VMBuilder is given to the script by pvc (no import).
"""


class VMBuilderScript(VMBuilder):  # noqa: F821 (VMBuilder is in the script's globals)
    def install(self):
        self.log(f"nothing to install for {self.vm_name}")
