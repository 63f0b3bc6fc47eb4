"""User-supplied name patterns (`vm list <match>`, `GET /vm?match=`), matched in bounded time.

A pattern has at most limits.PATTERN_MAX characters.
- A glob (*, ?, [abc], [!abc]) is matched in this process by fnmatch: its translation puts
  every `*` but the last into an atomic group (`(?>.*?a)`), which never backtracks, so a match
  costs at most (name length x pattern length) steps, even for `*a*a*a...*b`.
- A regular expression can backtrack exponentially (`^(a+)+$` against 27 x `a` + `-x` runs
  for seconds) and Python's `re` can neither be interrupted nor release the GIL meanwhile. It
  is matched against the list's names in a worker process (pvc/ops/pattern_worker.py), given
  limits.PATTERN_SECONDS for the whole list; a worker that overruns is killed, and the
  request is refused. Workers are kept and reused (starting one costs ~20 ms). At most
  MAX_WORKERS match at once; a request that finds none free within limits.PATTERN_SECONDS is
  refused as busy (503), so regular expressions hold an API thread for at most twice that and
  many of them at once cannot take every thread from other requests.
"""

import fnmatch
import json
import os
import pkgutil
import re
import select
import subprocess
import sys
import threading
import time

from pvc import limits
from pvc.errors import InvalidInput, Unavailable

MAX_WORKERS = 4  # regular expressions matched at once; more wait a while for a free worker
WORKER_SOURCE = "pattern_worker.py"


def check_length(pattern: str, what: str = "name pattern") -> None:
    if len(pattern) > limits.PATTERN_MAX:
        raise InvalidInput(
            f"the {what} is {len(pattern)} characters long; at most {limits.PATTERN_MAX} "
            "are accepted"
        )


def check(pattern: str, regex: bool) -> None:
    """Refuses a pattern too long, or a regular expression that does not compile."""
    check_length(pattern)
    if regex:
        try:
            re.compile(pattern)  # compiling is linear in the pattern; matching is not
        except (re.error, OverflowError, RecursionError, ValueError) as exc:  # a{4294967296}
            raise InvalidInput(f"invalid regular expression {pattern!r}: {exc}") from None


def matching(pattern: str, names: list[str], regex: bool = False) -> list[bool]:
    """For each name: does it match? A glob must match the whole name; a regular expression
    is searched anywhere in it (anchor it with ^ and $)."""
    check(pattern, regex)
    if not regex:
        return [fnmatch.fnmatchcase(name, pattern) for name in names]
    if not names:
        return []
    chosen = set(_WORKERS.search(pattern, names, limits.PATTERN_SECONDS))
    return [index in chosen for index in range(len(names))]


class PatternTimeout(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            f"the regular expression took longer than {limits.PATTERN_SECONDS:g} s to match "
            "every name; simplify it"
        )


class _Worker:
    """One pattern_worker process and its pipes."""

    def __init__(self, source: str):
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", source, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._pending = b""

    def ask(self, request: dict, deadline: float) -> dict | None:
        """The worker's answer, or None if it did not come by `deadline` (or the worker died)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except OSError:
            return None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return json.loads(line)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class _Workers:
    """Idle workers for reuse, at most MAX_WORKERS busy at once."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_WORKERS)
        self._source: str | None = None

    def search(self, pattern: str, names: list[str], seconds: float) -> list[int]:
        """The positions of the names in which `pattern` is found, within `seconds` of
        matching; waiting for a free worker may take as long again, then it is refused."""
        if not self._slots.acquire(timeout=seconds):
            raise Unavailable(
                f"{MAX_WORKERS} regular expressions are being matched already; try again"
            )
        try:
            worker = self._take()
            answer = worker.ask({"pattern": pattern, "names": names}, time.monotonic() + seconds)
            if answer is None:
                worker.kill()  # still matching (or dead): never reused
                raise PatternTimeout()
            with self._lock:
                self._idle.append(worker)
        finally:
            self._slots.release()
        if "error" in answer:
            raise InvalidInput(f"invalid regular expression {pattern!r}: {answer['error']}")
        return answer["matches"]

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    return worker
                worker.kill()
            if self._source is None:
                data = pkgutil.get_data(__package__, WORKER_SOURCE)
                assert data is not None
                self._source = data.decode()
        return _Worker(self._source)


_WORKERS = _Workers()
