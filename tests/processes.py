"""Ending the processes that tests start, in bounded time.

A bare `Popen.wait()`, or the one `with Popen(...)` runs on leaving (even after a `wait` that
timed out), waits forever for a process that never exits, and the whole suite hangs with it.
Every wait of the test helpers is bounded instead: on expiry the process is killed, and a
process that outlives even SIGKILL (stuck in the kernel) fails the test with its pid.
Commands run to completion with `subprocess.run(..., timeout=COMMAND_TIMEOUT)`, which kills
the command on expiry.
"""

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

COMMAND_TIMEOUT = 120.0  # one helper command (a libvirtd's first start probes QEMU for ~8 s)
KILL_WAIT = 10.0  # after SIGKILL: the kernel's time to tear a process down


def end(process: subprocess.Popen, grace: float = 10.0, signum: int = signal.SIGTERM) -> int:
    """Sends `signum` (none if 0) to a running process, waits up to `grace` seconds, then kills
    it; its exit code. Raises TimeoutError if it survives SIGKILL for KILL_WAIT seconds."""
    if signum and process.poll() is None:
        process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
        process.send_signal(signum)
    try:
        return process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
    try:
        return process.wait(KILL_WAIT)
    except subprocess.TimeoutExpired:
        raise TimeoutError(
            f"process {process.pid} ({process.args!r}) survived SIGKILL for {KILL_WAIT} s"
        ) from None


@contextmanager
def running(args: list[str], grace: float = 10.0, **popen: Any) -> Iterator[subprocess.Popen]:
    """`with Popen(args, **popen)`, whose exit is bounded: on leaving, the process gets SIGTERM
    unless it has exited, and SIGKILL `grace` seconds later; its pipes are closed."""
    process = subprocess.Popen(args, **popen)
    try:
        yield process
    finally:
        try:
            end(process, grace)
        finally:
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
