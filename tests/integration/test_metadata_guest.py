"""The tiny guest and the metadata service together (scripts/mkguest, pvc.node.metadata): real
TCG guests on a managed network of three node daemons fetch their hostname and user-data once
they have a lease; a VM whose profile has a userdata script runs it, rendered for it, and its
console shows every line and the exit code; a VM without a profile has no user-data."""

from pathlib import Path

import pytest

from pvc.ops import provisioner_store
from tests.integration.test_metadata import add_profile
from tests.integration.test_network_guests import DOMAIN, NETWORK  # in namespaces of our own
from tests.network_rig import boot_guest, guest_network_cluster, until

SCRIPT = """#!/bin/sh
echo "I am {{ vm_name }} of profile {{ profile }}, named $(hostname)"
echo second line
exit 3
"""


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """Guest "vmu" on node1 built from profile "web" (userdata SCRIPT), "vmn" on node3 from
    none; the console logs of both."""
    workdir = tmp_path_factory.mktemp("mg")  # short: it holds the libvirtd sockets
    with guest_network_cluster(workdir, "pvcm", "10.207.0", NETWORK, primary="node2") as (
        cluster,
        zk,
    ):
        provisioner_store.add(zk, "userdata", "hello", {"text": SCRIPT})
        add_profile(zk, "web", "hello")
        for index, (name, node) in enumerate((("vmu", "node1"), ("vmn", "node3")), start=1):
            vm_uuid, _ = boot_guest(cluster, workdir, name, node, f"52:54:00:65:00:{index:02x}",
                                    NETWORK)  # fmt: skip
            if name == "vmu":  # long before it has a lease (a TCG boot takes seconds)
                zk.write({("domain.profile", vm_uuid): "web"})
        yield {name: workdir / f"{name}.log" for name in ("vmu", "vmn")}


def console_lines(log: Path) -> list[str]:
    return log.read_text(errors="replace").splitlines() if log.exists() else []


def wait_for_line(log: Path, prefix: str) -> list[str]:
    """The console's lines once one starts with `prefix` (a boot, a lease and the metadata
    service's retries on a loaded machine: minutes at worst)."""

    def seen() -> list[str] | None:
        lines = console_lines(log)
        return lines if any(line.startswith(prefix) for line in lines) else None

    return until(seen, 240, f"'{prefix}' on {log.name}")


def test_a_guest_without_a_profile_learns_its_hostname_and_has_no_user_data(rig):
    lines = wait_for_line(rig["vmn"], "pvc-guest: no user-data")
    assert f"pvc-guest: metadata hostname vmn.{DOMAIN}" in lines
    assert not [line for line in lines if line.startswith("pvc-guest: user-data")]


def test_a_guest_runs_its_profiles_userdata_script_rendered_for_it(rig):
    lines = wait_for_line(rig["vmu"], "pvc-guest: user-data exit ")
    assert f"pvc-guest: metadata hostname vmu.{DOMAIN}" in lines
    ran = [line for line in lines if line.startswith("pvc-guest: user-data")]
    assert ran == [
        "pvc-guest: user-data: I am vmu of profile web, named vmu",  # its command line's name
        "pvc-guest: user-data: second line",
        "pvc-guest: user-data exit 3",
    ]
