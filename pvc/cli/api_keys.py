"""Where `pvc connection add` takes an API key from, keeping it out of argv when asked to.

In order: `--api-key KEY` (shown to every user by `ps`: it works, with a warning), `--api-key -`
(standard input), `--key-file FILE`, `$PVC_API_KEY`, else a prompt without echo when standard
input and standard error are a terminal (an empty answer: no key). A key is visible ASCII
without spaces, as the X-Api-Key header needs; surrounding whitespace (a file's final newline)
is dropped.
"""

import getpass
import os
import sys
from typing import Any

from pvc import limits
from pvc.cli.input_files import STDIN, read_input
from pvc.config_values import check_api_key
from pvc.errors import UsageError

ENVIRONMENT = "PVC_API_KEY"
READ_MAX = limits.API_KEY_MAX + 2  # a key and its line end
ARGV_WARNING = (
    "pvc: warning: --api-key KEY is visible to other users of this machine (ps);"
    " use '--api-key -' (standard input), --key-file FILE, $PVC_API_KEY or the prompt"
)


def from_arguments(arguments: dict[str, Any], name: str) -> str | None:
    """The key for connection `name` from the first source given; None for no key."""
    given, key_file = arguments["--api-key"], arguments["--key-file"]
    if given == STDIN:
        key = read_input(STDIN, READ_MAX, "the API key")
    elif given is not None:
        key = _checked(given.strip())
        print(ARGV_WARNING, file=sys.stderr)  # once it is known to be a key
        return key
    elif key_file is not None:
        key = read_input(key_file, READ_MAX, "the API key")
    elif os.environ.get(ENVIRONMENT):
        key = os.environ[ENVIRONMENT]
    elif sys.stdin.isatty() and sys.stderr.isatty():
        key = _prompt(f"API key of '{name}' (empty: none): ")
        if not key.strip():
            return None
    else:
        return None
    return _checked(key.strip())


def _prompt(question: str) -> str:
    try:
        return getpass.getpass(question, stream=sys.stderr)
    except EOFError:  # Ctrl-D: as an empty answer
        return ""


def _checked(key: str) -> str:
    if not key:
        raise UsageError("the API key is empty")
    complaint = check_api_key(key)
    if complaint:
        raise UsageError(f"the API key {complaint}")
    return key
