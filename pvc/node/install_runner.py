"""Runs an install script (pvc.node.install_script) in a child process, phase by phase.

A script is an administrator's Python, run as root; it may hang, crash, fork or leave mounts.
So it never runs in the daemon: `run` starts a child of the same interpreter with the same pvc
code importable (the zipapp file, or its pinned descriptor, on sys.path: pvc.zipapp.command),
in a process group of its own. The child reads its request (the script, the VM's context, the
work directory, the Ceph settings: paths only, never a key) as JSON on stdin, runs setup,
create, prepare and install, and always cleanup (in a finally), and reports on a pipe of its
own, one JSON line each: {"phase"} as each phase starts, {"log"} for self.log(), then
{"result": xml} or {"error": "<phase>: <the script's message>"}. The script's own output
(print, its tools) arrives on stdout and goes to the log, line by line. When the child ends,
what is left of its group is killed (a `sleep &` holding stdout must not make the run wait).

A cancel or the timeout stops the child: SIGTERM to its group (the child raises in the script,
so its finally unmounts), then SIGKILL after GRACE. Whatever happened, the parent then
unmounts what is still mounted under the work directory, frees the loop devices of its files,
breaks the RBD locks a killed child held on the VM's volumes (so the create's undo can remove
them) and removes the work directory. If the runner itself dies, the kernel sends the child
SIGTERM (PR_SET_PDEATHSIG): it stops, unmounts and removes the work directory itself.
"""

import contextlib
import ctypes
import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from pvc import zipapp
from pvc.config import Config
from pvc.drivers import ceph as ceph_driver
from pvc.drivers import rbd_locks, volume_images
from pvc.errors import PvcError
from pvc.node import install_script

log = logging.getLogger("pvc.node.install_runner")
POLL_INTERVAL = 0.5
GRACE = 10.0  # after SIGTERM, for the child's own cleanup
DRAIN = 5.0  # after the child ended, for the rest of its output
PR_SET_PDEATHSIG = 1  # prctl(2)
CHILD = "from pvc.node.install_runner import child; child()"


class Stopped(BaseException):
    """Raised in the child by SIGTERM: the runner stops the script (not an Exception, so a
    script's `except Exception` does not swallow it)."""


def run(
    script_name: str,
    text: str,
    context: dict[str, Any],
    config: Config,
    on_phase: Callable[[str], None],
    cancelled: Callable[[], bool],
    timeout: float,
) -> str:
    """Runs the script's five phases in a child process; the XML its create() returned.
    PvcError("install script '<name>', <phase>: <message>") when a phase fails, the child is
    stopped (cancel, timeout) or dies; PvcError naming the script when it does not load."""
    install_script.check(script_name, text)
    settings = dict(config.get("ceph")) if config.get("ceph.enabled") else None
    folder = config.get("provisioner.work_directory") or tempfile.gettempdir()
    try:
        work = tempfile.mkdtemp(prefix="pvc-install-", dir=folder)
    except OSError as exc:
        raise PvcError(
            f"install script '{script_name}': cannot make its work folder in {folder}: "
            f"{exc.strerror}"
        ) from None
    request = {"name": script_name, "text": text, "context": context, "work": work,
               "ceph": settings, "parent": os.getpid()}  # fmt: skip
    reader, writer = os.pipe()
    try:
        process = subprocess.Popen(
            zipapp.command(CHILD, str(writer)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(*zipapp.pinned_descriptors(), writer),
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=work,
        )
    except OSError as exc:
        os.close(reader)
        _release(work, [], None)
        raise PvcError(f"install script '{script_name}': cannot start Python: {exc}") from None
    finally:
        os.close(writer)
    follower = _Follower(script_name, process, reader, on_phase)
    killed = False
    try:
        follower.send(json.dumps(request).encode())
        stop = follower.follow(cancelled, timeout)
        if stop is not None:
            killed = _stop(process)
            raise PvcError(f"install script '{script_name}', {follower.phase}: {stop}")
        return follower.outcome()
    finally:
        if process.poll() is None:  # the caller's on_phase raised: stop before closing
            killed = _stop(process)
        follower.close()
        disks = (context.get("disks") or []) if killed else []
        _release(work, disks, config if settings else None)


class _Follower:
    """Reads the child's messages and output until both end, or until a stop is due."""

    def __init__(self, name: str, process: subprocess.Popen, reader: int, on_phase: Callable):
        assert process.stdin is not None and process.stdout is not None
        self.name = name
        self.process = process
        self.on_phase = on_phase
        self.phase = "setup"
        self.answer: dict[str, Any] = {}
        self.reader = reader
        self.selector = selectors.DefaultSelector()
        self.selector.register(reader, selectors.EVENT_READ, self._message)
        self.selector.register(process.stdout, selectors.EVENT_READ, self._output)
        self.buffers: dict[int, bytes] = {}

    def send(self, data: bytes) -> None:
        stdin = self.process.stdin
        try:
            stdin.write(data)  # type: ignore[union-attr]
            stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass  # the child is gone already: follow() sees it end

    def follow(self, cancelled: Callable[[], bool], timeout: float) -> str | None:
        """None once the child closed both channels; else why it must be stopped. Once the
        child has ended, what is left of its process group (a script's `sleep &` holding its
        stdout) is killed, and what still holds a channel after DRAIN is no longer waited for."""
        deadline = time.monotonic() + timeout
        ended: float | None = None
        while self.selector.get_map():
            for key, _ in self.selector.select(POLL_INTERVAL):
                self._read(key.fileobj, key.data)
            if ended is None and self.process.poll() is not None:
                ended = time.monotonic()
                _signal_group(self.process, signal.SIGKILL)
            if ended is not None and time.monotonic() > ended + DRAIN:
                log.warning("install script '%s': its output left open by a process outside "
                            "its group, no longer read", self.name)  # fmt: skip
                return None
            if cancelled():
                return "cancelled"
            if time.monotonic() > deadline:
                return f"did not finish within {timeout:g} s (stopped)"
        return None

    def _read(self, source: Any, handle: Callable[[str], None]) -> None:
        fd = source if isinstance(source, int) else source.fileno()
        data = os.read(fd, 65536)
        if not data:
            self.selector.unregister(source)
            rest = self.buffers.pop(fd, b"")
            if rest:
                handle(rest.decode(errors="replace"))
            return
        *lines, self.buffers[fd] = (self.buffers.get(fd, b"") + data).split(b"\n")
        for line in lines:
            handle(line.decode(errors="replace"))

    def _output(self, line: str) -> None:
        log.info("install script '%s': %s", self.name, line.rstrip())

    def _message(self, line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            log.error("install script '%s': unreadable message %r", self.name, line[:200])
            return
        if "phase" in message:
            self.phase = message["phase"]
            self.on_phase(self.phase)
        elif "log" in message:
            log.info("install script '%s': %s", self.name, message["log"])
        else:
            self.answer = message

    def outcome(self) -> str:
        code = self.process.wait()
        if "result" in self.answer:
            return self.answer["result"]
        if "error" in self.answer:
            raise PvcError(self.answer["error"])
        raise PvcError(
            f"install script '{self.name}', {self.phase}: its process ended (exit code {code}) "
            "without a result"
        )

    def close(self) -> None:
        self.selector.close()
        os.close(self.reader)
        self.process.stdout.close()  # type: ignore[union-attr]


def _stop(process: subprocess.Popen) -> bool:
    """Stops the child's process group: SIGTERM (the child cleans up), SIGKILL after GRACE.
    True when it had to be killed (its cleanup may not have run)."""
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(GRACE)
        return False
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()
        return True


def _signal_group(process: subprocess.Popen, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has ended
        os.killpg(process.pid, number)


def _release(work: str, disks: list[dict[str, Any]], config: Config | None) -> None:
    """Leaves nothing of a run behind: the mounts under `work` (deepest first), the loop
    devices of its files, the RBD locks of a killed child on `disks`, then `work` itself
    (kept, and logged, if something there is still mounted: removing it would reach in)."""
    if not os.path.isdir(work):
        return
    for point in volume_images.mounted_under(work):
        try:
            volume_images.unmount(point)
            log.warning("unmounted %s, left mounted by an install script", point)
        except PvcError as exc:
            log.error("cannot unmount %s after an install script: %s", point, exc.message)
    files = [os.path.join(work, name) for name in os.listdir(work)]
    for device in volume_images.loops_of(files):
        try:
            volume_images.detach_loop(device)
        except PvcError as exc:
            log.error("cannot free %s after an install script: %s", device, exc.message)
    if config is not None:
        connection = ceph_driver.shared(config)
        for disk in disks:
            try:
                rbd_locks.break_locks(connection, disk["pool"], disk["volume"])
            except PvcError as exc:
                log.error("cannot break the locks of %s/%s: %s", disk["pool"], disk["volume"],
                          exc.message)  # fmt: skip
    if volume_images.mounted_under(work):
        log.error("%s is left: something in it is still mounted", work)
        return
    shutil.rmtree(work, ignore_errors=True)


# --- the child ---------------------------------------------------------------------------


def child() -> None:
    """The child process's main: load the script, run its phases, report (see the module)."""
    channel = os.fdopen(int(sys.argv[1]), "w", buffering=1)

    def send(**message: Any) -> None:
        with contextlib.suppress(OSError):  # the runner is gone: clean up all the same
            channel.write(json.dumps(message) + "\n")

    def stopped(number: int, frame: Any) -> None:
        raise Stopped()

    signal.signal(signal.SIGTERM, stopped)
    request = json.load(sys.stdin)
    if not _stop_with_parent(request["parent"]):
        return
    name, settings = request["name"], request["ceph"]
    ceph = ceph_driver.Ceph(
        settings["config_file"], settings["client"], settings["keyring"], settings["timeout"]
    ) if settings else None  # fmt: skip
    try:
        script = install_script.load(name, request["text"])
    except PvcError as exc:
        send(error=exc.message)
        return
    try:
        builder = script(request["context"], request["work"], ceph, lambda m: send(log=m))
    except Exception as exc:
        send(error=f"install script '{name}' does not load: {install_script.one_line(exc)}")
        return
    xml, error = _phases(builder, send)
    send(**({"error": f"install script '{name}', {error}"} if error else {"result": xml}))
    if ceph is not None:
        ceph.close()
    if os.getppid() != request["parent"] and not volume_images.mounted_under(request["work"]):
        shutil.rmtree(request["work"], ignore_errors=True)  # the runner is gone: no one else will


def _stop_with_parent(parent: int) -> bool:
    """Asks the kernel for SIGTERM when the runner's thread ends (the daemon died), so the
    script stops and unmounts instead of writing on into volumes that the create's recovery
    removes; False if the runner is gone already."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent


def _phases(builder: install_script.VMBuilder, send: Callable[..., None]) -> tuple[str, str]:
    """Runs the phases, cleanup always; (the XML, "") or ("", "<phase>: <message>")."""
    xml = error = ""
    phase = "setup"
    try:
        for phase in install_script.PHASES[:-1]:
            send(phase=phase)
            answer = getattr(builder, phase)()
            if phase == "create":
                if not isinstance(answer, str) or not answer.strip():
                    raise PvcError("create() must return the domain XML, a non-empty string")
                xml = answer
    except BaseException as exc:
        builder.failed = phase
        error = f"{phase}: {install_script.one_line(exc)}"
    finally:
        send(phase="cleanup")
        try:
            builder.cleanup()
        except BaseException as exc:
            message = install_script.one_line(exc)
            if error:
                send(log=f"cleanup after the failure failed too: {message}")
            else:
                error = f"cleanup: {message}"
    return ("", error) if error else (xml, "")
