"""One real single-host Ceph for the test session and `make run` (scripts/ceph).

Its monitor, manager and first OSD listen on `address`, an address of the host that the test
clusters' network namespaces reach through their route to the host (LocalCluster adds it), so
each node's Ceph clients (its daemon, its QEMU processes) come from the node's own address, as
on real nodes: a storage fence can blocklist one node. Slots (PVC_TEST_SLOT) get their own
address and Ceph, and keep the bootstrap-osd key in the Ceph's folder instead of the host's
/var/lib/ceph (pvc's `ceph.bootstrap_keyring` names it).
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.local_cluster import REPO
from tests.processes import COMMAND_TIMEOUT

CEPH_SCRIPT = REPO / "scripts" / "ceph"


@dataclass
class CephService:
    folder: Path
    address: str

    @property
    def conf(self) -> Path:
        return self.folder / "ceph.conf"

    @property
    def keyring(self) -> Path:
        return self.folder / "keyring"

    @property
    def bootstrap_keyring(self) -> Path:
        return self.folder / "bootstrap-osd.keyring"

    def settings(self, timeout: float = 5.0) -> dict[str, Any]:
        """The `ceph` section of a pvc configuration that uses this Ceph."""
        return {
            "enabled": True,
            "config_file": str(self.conf),
            "client": "admin",
            "keyring": str(self.keyring),
            "bootstrap_keyring": str(self.bootstrap_keyring),
            "timeout": timeout,
        }

    def start(self) -> "CephService":
        slot = os.environ.get("PVC_TEST_SLOT")
        env = {**os.environ, "CEPH_BOOTSTRAP_INSTALL": "0" if slot else "1"}
        subprocess.run(
            [str(CEPH_SCRIPT), "start", str(self.folder), self.address],
            check=True, capture_output=True, env=env, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip
        return self

    def stop(self, purge: bool = True) -> None:
        subprocess.run(
            [str(CEPH_SCRIPT), "stop", str(self.folder), *(["--purge"] if purge else [])],
            check=False, capture_output=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip

    def ceph(self, *args: str, check: bool = True) -> Any:
        """The `ceph` command line's JSON answer (for tests to check Ceph's own view)."""
        result = subprocess.run(
            ["ceph", "-c", str(self.conf), "--connect-timeout", "10", *args, "-f", "json"],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=check,
        )  # fmt: skip
        text = result.stdout.strip()
        return json.JSONDecoder().raw_decode(text)[0] if text else None

    def rbd(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["rbd", "-c", str(self.conf), *args],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
        )  # fmt: skip


def session_address() -> str:
    slot = os.environ.get("PVC_TEST_SLOT")
    return f"10.249.{int(slot) if slot else 0}.1"
