"""A backstop behind pytest-timeout, so that a hang fails one test instead of stopping the suite.

pytest-timeout's signal method fails a test that outlives its limit by raising in the main
thread, once, and it stops its timer as soon as a test fails (its pytest_exception_interact),
so the teardown of a failed test runs with no limit. A teardown, or the exit of a
`with Popen(...)`, that waits for a process that never exits would hang the suite. So, from
the start of each test to the end of its teardown: at the limit + grace the processes this
pytest started since the test began are killed (a wait for one of them returns), and if the
test is still not done a grace later, the stacks of every thread go to stderr and pytest exits
with 1: a suite that cannot go on stops, instead of running into CI's limit.

Loaded by tests/conftest.py (its hooks), or `-p tests.timeout_backstop`.
"""

import contextlib
import faulthandler
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

MAX_GRACE = 30.0  # seconds; a shorter limit gets as much grace as its limit
_BACKSTOP = pytest.StashKey["Backstop"]()


def children() -> set[int]:
    """The PIDs of this process's children, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


class Backstop:
    def __init__(self, name: str, timeout: float):
        self.name = name
        self.grace = min(MAX_GRACE, timeout)
        self.before = children()
        self._done = threading.Event()
        thread = threading.Thread(target=self._run, args=(timeout,), name="timeout-backstop")
        thread.daemon = True
        thread.start()

    def _run(self, timeout: float) -> None:
        if self._done.wait(timeout + self.grace):
            return
        for pid in children() - self.before:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._done.wait(self.grace):
            return
        print(f"\n{self.name} is still stuck past its time limit; stopping", file=sys.stderr)
        faulthandler.dump_traceback(all_threads=True)
        os._exit(1)

    def cancel(self) -> None:
        self._done.set()


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: object) -> None:
    """Returns nothing, so pytest-timeout sets its own timer after this one."""
    if _BACKSTOP not in item.stash:  # once per test (func_only sets the timer per call too)
        item.stash[_BACKSTOP] = Backstop(item.nodeid, settings.timeout)  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Ends the backstop once the test's teardown is over."""
    yield
    backstop = item.stash.get(_BACKSTOP, None)
    if backstop is not None:
        backstop.cancel()
