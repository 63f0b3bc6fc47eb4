"""The node daemon's side of the watchdog (pvc.node.watchdog): starts it, tells it things.

One watchdog process per daemon enforces both deadlines the daemon may fail to meet while
frozen or dead: the primary lease (the floating address) and the self-fence (the VMs).
"""

import logging
import subprocess
import sys
from pathlib import Path

from pvc import zipapp

log = logging.getLogger("pvc.node.watchdog")


def watchdog_command() -> list[str]:
    """Runs pvc.node.watchdog from the same zipapp or source tree as this process."""
    root = zipapp.archive_path() or str(Path(__file__).resolve().parents[2])
    code = f"import sys; sys.path.insert(0, {root!r}); from pvc.node.watchdog import main; main()"
    return [sys.executable, "-c", code]


class WatchdogProcess:
    def __init__(self) -> None:
        self._process = subprocess.Popen(
            watchdog_command(), stdin=subprocess.PIPE, pass_fds=zipapp.pinned_descriptors()
        )

    def tell(self, message: str) -> None:
        """Sends one line of the watchdog's protocol."""
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(message.encode() + b"\n")
            self._process.stdin.flush()
        except (OSError, ValueError):
            log.error("the node watchdog is gone (exit code %s)", self._process.poll())

    def close(self) -> None:
        """Ends the watchdog: it drops the floating address it still holds and exits (an
        armed self-fence is kept to its deadline unless it was told `unguard`)."""
        if self._process.stdin:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
