"""Simulated BMCs for tests: one ipmi_sim per node (scripts/ipmi-bmc), on 127.0.0.1 unless
told another address.

A BMC's chassis power runs real commands: `power off` runs the node's POWER_OFF_CMD (in the
project: kill its daemon, libvirtd and QEMU), `power on` its POWER_ON_CMD, each in the
background with $BMC_DIR set to the BMC's folder; the power status turns only once the command
succeeded. See scripts/ipmi-bmc for the wiring.

    bmcs = Bmcs(tmp_path)
    bmc = bmcs.start("node1", "start-node1", "kill-node1")   # a pvc.drivers.ipmi.Bmc
    ipmi.fence(bmc)
    bmcs.stop()
"""

import os
import secrets
import signal
import socket
import subprocess
from pathlib import Path

from pvc.drivers.ipmi import Bmc
from tests.processes import COMMAND_TIMEOUT

REPO = Path(__file__).resolve().parent.parent
IPMI_BMC = REPO / "scripts" / "ipmi-bmc"


def free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 now (IPMI is UDP; a free TCP port says nothing about it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Bmcs:
    """The BMCs started under `basedir` (one folder per name); stop() stops them."""

    def __init__(self, basedir: Path):
        self.basedir = Path(basedir)
        self.bmcs: dict[str, Bmc] = {}
        self.pids: dict[str, int] = {}  # ipmi_sim's, also to stop it if its folder went away

    def folder(self, name: str) -> Path:
        return self.basedir / name

    def start(
        self,
        name: str,
        power_on_cmd: str,
        power_off_cmd: str,
        *,
        power: str = "on",
        user: str = "admin",
        password: str | None = None,
        address: str = "127.0.0.1",
    ) -> Bmc:
        """Starts (or keeps) the BMC `name` on `address`; its chassis starts in `power` (no
        command runs then). The password is random unless given: a test can look for it in any
        output."""
        if name in self.bmcs:
            return self.bmcs[name]
        password = password or "pw-" + secrets.token_hex(6)
        env = dict(os.environ, BMC_USER=user, BMC_PASSWORD=password, BMC_POWER=power)
        for attempt in range(3):  # the free port may be taken between our look and ipmi_sim's
            port = free_udp_port()
            result = subprocess.run(
                [
                    IPMI_BMC,
                    "start",
                    self.folder(name),
                    str(port),
                    power_on_cmd,
                    power_off_cmd,
                    address,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
            if result.returncode == 0:
                bmc = Bmc(address, user, password, port)
                self.bmcs[name] = bmc
                self.pids[name] = int(result.stdout.split()[-1])
                return bmc
            if attempt == 2:
                raise RuntimeError(f"ipmi-bmc start {name} failed: {result.stderr.strip()}")
        raise AssertionError("unreachable")

    def pid(self, name: str) -> int:
        """The PID of the BMC's ipmi_sim."""
        return self.pids[name]

    def power(self, name: str) -> str:
        """The chassis state as the BMC holds it ("on"/"off"), read from its folder, not IPMI."""
        return subprocess.run(
            [IPMI_BMC, "power", self.folder(name)],
            capture_output=True,
            text=True,
            check=True,
            timeout=COMMAND_TIMEOUT,
        ).stdout.strip()

    def log(self, name: str) -> str:
        """The BMC's log: each power request, each command run, and the commands' output."""
        return (self.folder(name) / "bmc.log").read_text()

    def stop(self, *names: str) -> None:
        """Stops the named BMCs (all by default). The nodes they power stay as they are."""
        for name in names or list(self.bmcs):
            subprocess.run(
                [IPMI_BMC, "stop", self.folder(name)], check=True, timeout=COMMAND_TIMEOUT
            )
            self.bmcs.pop(name, None)
            pid = self.pids.pop(name, None)
            try:  # its folder may have been removed under it: stop it by its PID
                if pid and Path(f"/proc/{pid}/comm").read_text().strip() == "ipmi_sim":
                    os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass
