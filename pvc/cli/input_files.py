"""The files and standard input a command reads (a domain's XML, an API key): at most a
limit's bytes, UTF-8, else a UsageError (exit 2) in one line naming the file, before anything
is sent to the API."""

import sys

from pvc.errors import UsageError
from pvc.text_files import read_text, read_text_file, reason

STDIN = "-"


def read_input(path: str, limit: int, what: str) -> str:
    """The text of the file at `path`, or of standard input for '-': `what` names it."""
    source = "standard input" if path == STDIN else path
    try:
        if path == STDIN:
            return read_text(sys.stdin.buffer, limit)
        return read_text_file(path, limit)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {what} from {source}: {reason(exc)}") from None
