#!/bin/sh
# Example userdata (pvc provisioner userdata add hello scripts/provisioner/userdata-hello.sh):
# a script the guest runs at its first boot; the metadata service fills in the VM's name.
echo "hello from {{ vm_name }}"
