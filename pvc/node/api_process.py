"""The API as a child process of a coordinator's node daemon (`api.serve_on_primary`).

Why a process: a request may hold the GIL for seconds (a costly regular expression, a huge
body); in the daemon that stalled keepalives, the primary lease and contention, and cost the
node its primary role. A child runs the same zipapp as `pvc api serve --config <the daemon's
configuration>`, on its own Zookeeper session, and nothing it does can stall the daemon.

Warm on every coordinator: the daemon starts it at start-up, whether primary or not. It binds
`api.listen_address` with IP_FREEBIND (pvc.api.server), so it listens on the floating address
before the address arrives; only the primary, which holds the address, gets its traffic, and
after a failover the new primary answers at once, its tree already in memory.

Supervision: the child is restarted, with a backoff, whenever it exits (each exit logged), and
stopped (SIGTERM, then SIGKILL after STOP_GRACE s) when the daemon stops. It must never outlive
the daemon, which may be killed (SIGKILL) and restarted, and then needs the port: the child
asks the kernel for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, `follow_supervisor`),
and a thread of it checks its parent pid every second as a backstop. The kernel sends that
signal when the THREAD that started the child ends, so the child is always started by the
supervising thread, which lives until the daemon stops it.
"""

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time

from pvc import zipapp

log = logging.getLogger("pvc.node.api")

SUPERVISOR_ENV = "PVC_SUPERVISOR_PID"  # set for the child: the pid of the daemon it follows
FIRST_DELAY = 0.5  # seconds before the first restart; doubled after each quick exit
MAX_DELAY = 30.0
STABLE_RUN = 60.0  # a child that ran this long before exiting restarts after FIRST_DELAY
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
POLL = 0.2  # how often the supervisor looks at its child
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def api_command(config_path: str) -> list[str]:
    """`pvc api serve` from the same zipapp (or source tree) as this daemon."""
    entry = "from pvc.__main__ import entry; entry()"
    return zipapp.command(entry, "api", "serve", "--config", config_path)


class ApiProcess:
    """`pvc api serve` as a supervised child: start() once, stop() once."""

    def __init__(self, config_path: str):
        self.command = api_command(config_path)
        self._stopping = threading.Event()
        self._process: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._supervise, name="api-process", daemon=True)

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the child (SIGTERM, SIGKILL after STOP_GRACE s) and its supervision."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(STOP_GRACE + 5)

    def reopen_logs(self) -> None:
        """Passes the daemon's SIGHUP on: the child reopens its log file too."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    def _supervise(self) -> None:
        delay = FIRST_DELAY
        while not self._stopping.is_set():
            started = time.monotonic()
            code = self._run_once()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= STABLE_RUN:
                delay = FIRST_DELAY
            log.warning("the API process exited (%s); starting it again in %g s", code, delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_DELAY)

    def _run_once(self) -> str:
        """Runs the child until it exits or the daemon stops; how it ended."""
        env = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
        env[SUPERVISOR_ENV] = str(os.getpid())
        try:
            process = subprocess.Popen(self.command, env=env, pass_fds=zipapp.pinned_descriptors())
        except OSError as exc:
            return f"could not start it: {exc.strerror}"
        self._process = process
        log.info("API process %d started", process.pid)
        while process.poll() is None:
            if self._stopping.wait(POLL):
                _end(process)
                log.info("API process %d stopped", process.pid)
                break
        return f"exit code {process.returncode}"


def _end(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        log.warning("the API process %d ignored SIGTERM for %g s; killing it", process.pid,
                    STOP_GRACE)  # fmt: skip
        process.kill()
        process.wait()


# --- in the child -----------------------------------------------------------------------------


def follow_supervisor() -> None:
    """In `pvc api serve` started by a node daemon: end when the daemon ends, however it ends.

    SIGTERM (the API's own clean stop) when the parent dies, by the kernel; a thread that
    finds the parent gone (the kernel's signal lost to a race, or ignored) sends it too, then
    exits the process if it is still there STOP_GRACE s later."""
    value = os.environ.pop(SUPERVISOR_ENV, None)  # not for this process's own children
    if not value:
        return
    parent = int(value)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    log.warning("the node daemon (%d) is gone: the API stops", parent)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(STOP_GRACE)
    os._exit(1)
