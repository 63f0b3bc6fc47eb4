"""Output of list and info commands: `-f pretty` (tables, key-value blocks), `json`,
`json-pretty` (indented, sorted keys)."""

import json
from collections.abc import Callable, Sequence
from typing import Any

from pvc.errors import UsageError
from pvc.limits import one_line

FORMATS = ("pretty", "json", "json-pretty")


def check_format(name: str) -> str:
    """Returns `name` if it is an output format; raises UsageError otherwise."""
    if name not in FORMATS:
        raise UsageError(f"unknown output format '{name}'; use one of {', '.join(FORMATS)}")
    return name


def render(data: Any, output_format: str, pretty: Callable[[Any], str]) -> str:
    """`data` as JSON, or as `pretty(data)` for the pretty format."""
    check_format(output_format)
    if output_format == "json":
        return json.dumps(data)
    if output_format == "json-pretty":
        return json.dumps(data, indent=2, sort_keys=True)
    return pretty(data)


def cell(value: Any) -> str:
    """A value as table text: '-' for None, yes/no for booleans, anything else on one line
    (an outside system's multi-line error too)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return one_line(str(value))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned on the widest cell, two spaces apart, a header line on top."""
    lines = [list(headers)] + [[cell(value) for value in row] for row in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """One `label:  value` line per pair, values aligned."""
    width = max((len(label) for label, _ in pairs), default=0) + 1
    return "\n".join(f"{label + ':':<{width}}  {cell(value)}" for label, value in pairs)
