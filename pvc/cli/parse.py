"""Docopt for the group modules: `--help` prints the group's usage, bad usage is one line."""

import importlib
from typing import Any

from pvc.errors import UsageError


def parse(doc: str, args: list[str], group: str, name: str | None = None) -> dict[str, Any]:
    """Parses the words after the group name against the group's usage `doc`.

    `-h`/`--help` prints `doc` and exits 0; arguments that do not match raise UsageError
    naming the command as `name` (by default the group: "storage osd" for a subgroup).
    """
    from docopt import DocoptExit, docopt

    try:
        return docopt(doc, [group, *args], help=True)
    except DocoptExit as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        reason = "" if first_line.lower().startswith("usage:") else f" ({first_line})"
        name = name or group
        raise UsageError(
            f"invalid arguments for 'pvc {name}'{reason}; see 'pvc {name} --help'"
        ) from None


def dispatch(doc: str, args: list[str], options: Any, group: str, subgroups: dict[str, str]) -> int:
    """For a group made only of subgroups: hands `pvc <group> <subgroup> ...` to the
    subgroup's module (each has its own usage); anything else gets the group's usage."""
    if args and args[0] in subgroups:
        return importlib.import_module(subgroups[args[0]]).main(args, options)
    parse(doc, args, group)  # prints the usage, or the error for a wrong command
    return 2
