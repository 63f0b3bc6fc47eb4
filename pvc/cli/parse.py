"""Docopt for the group modules: `--help` prints the group's usage, bad usage is one line."""

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
