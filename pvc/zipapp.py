"""Keeping a long-running process's own code readable while dist/pvc is replaced under it.

Python reads modules from the zipapp lazily, by path, long after start. Upgrading a node is
copying a new file over the old one, so a daemon started from the old file would later read
modules from the new one at the old offsets and fail. `pin()` re-executes the process from a
file descriptor of the file it started from (`/proc/self/fd/N`), which keeps that version
readable until the process ends; children that run pvc code get the descriptor passed on.
"""

import os
import sys
from pathlib import Path

import pvc

PINNED_PREFIX = "/proc/self/fd/"


def archive_path() -> str | None:
    """The zipapp this code runs from, or None when it runs from a source tree."""
    root = Path(pvc.__file__).parent.parent
    return str(root) if root.is_file() else None


def pin() -> None:
    """Re-executes this process from a descriptor of its zipapp (once; no-op from source)."""
    path = archive_path()
    if path is None or path.startswith(PINNED_PREFIX):
        return
    descriptor = os.open(path, os.O_RDONLY)
    os.set_inheritable(descriptor, True)
    os.execv(sys.executable, [sys.executable, f"{PINNED_PREFIX}{descriptor}", *sys.argv[1:]])


def pinned_descriptors() -> tuple[int, ...]:
    """Descriptors a child process must inherit to read the same pvc code."""
    path = archive_path()
    if path and path.startswith(PINNED_PREFIX):
        return (int(path[len(PINNED_PREFIX) :]),)
    return ()


def command(code: str, *args: str) -> list[str]:
    """A command running the Python `code` with the same pvc code as this process importable
    (its zipapp or source tree); `args` are its sys.argv[1:]. Pass it pinned_descriptors()."""
    root = archive_path() or str(Path(pvc.__file__).resolve().parent.parent)
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {root!r}); {code}", *args]
