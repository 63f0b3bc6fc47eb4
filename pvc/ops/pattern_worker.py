"""Matches names against a regular expression for pvc.ops.patterns, in a process of its own.

A standalone script (no pvc imports: it is run from its source text with `python -I -c`): a
Python regular expression cannot be interrupted and holds the GIL while it runs, so a
catastrophic one (`^(a+)+$`) runs here, where pvc.ops.patterns can kill it at its time limit.

Protocol, one JSON object per line. In: {"pattern": P, "names": [N, ...]}. Out: {"matches":
[index, ...]} (the names in which P is found, by position) or {"error": MESSAGE} for a pattern
that does not compile. End of input (the API process is gone): exit. It also dies with its
parent by PR_SET_PDEATHSIG, for a parent killed while a pattern runs here.
"""

import ctypes
import json
import os
import re
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent was gone before prctl took effect
        sys.exit(0)


def answer(request: dict) -> dict:
    try:
        compiled = re.compile(request["pattern"])
    except (re.error, OverflowError, RecursionError, ValueError) as exc:  # a{4294967296}
        return {"error": str(exc)}
    names = request["names"]
    return {"matches": [index for index, name in enumerate(names) if compiled.search(name)]}


def main() -> None:
    die_with_parent(int(sys.argv[1]))
    for line in sys.stdin:
        sys.stdout.write(json.dumps(answer(json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
