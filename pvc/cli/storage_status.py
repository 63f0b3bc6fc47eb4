"""Usage:
  pvc storage status [--format FORMAT]
  pvc storage util [--format FORMAT]
  pvc storage (status | util) -h | --help

Commands:
  status   The Ceph cluster's health and its warnings, monitors and quorum, OSDs up and in,
           cluster flags, placement groups by state, client I/O and recovery.
  util     Raw capacity and each pool's usage.

Both show what the primary coordinator collected at its last keepalive interval, and say so
when that is old (no primary collecting) or missing (Ceph not enabled).

Options:
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pvc.cli import client
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.parse import parse
from pvc.ops.sizes import format_size

if TYPE_CHECKING:
    from pvc.__main__ import Globals

POOL_HEADERS = ("POOL", "ID", "STORED", "USED", "MAX AVAIL", "USED %", "OBJECTS")
CLASS_HEADERS = ("CLASS", "TOTAL", "USED", "AVAIL", "USED %")


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "storage")
    output_format = check_format(arguments["--format"])
    api = client.for_options(options)
    if arguments["status"]:
        print(render(api.get("/storage/ceph/status"), output_format, status_text))
    else:
        print(render(api.get("/storage/ceph/utilization"), output_format, util_text))
    return 0


def status_text(answer: dict[str, Any]) -> str:
    """The pretty form of GET /storage/ceph/status."""
    recorded = answer["status"]
    if not recorded:
        return _freshness_note(answer) or "no Ceph status"
    if recorded.get("health") == "unreachable":
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(recorded.get("since") or 0))
        text = key_values(
            [
                ("health", "unreachable"),
                ("error", recorded.get("error")),
                ("since", since),
                ("collected", _collected(answer)),
            ]
        )
        return _with_note(answer, text)
    counts = recorded.get("osd_count") or {}
    monitors = recorded.get("monitors") or {}
    pgs = recorded.get("pgs") or {}
    io = recorded.get("io") or {}
    states = ", ".join(f"{n} {s}" for s, n in sorted((pgs.get("states") or {}).items()))
    quorum = ", ".join(monitors.get("quorum") or [])
    read = f"read {_rate(io.get('read_bytes_sec'))} ({io.get('read_op_per_sec')} op/s)"
    write = f"write {_rate(io.get('write_bytes_sec'))} ({io.get('write_op_per_sec')} op/s)"
    text = key_values(
        [
            ("health", recorded.get("health")),
            *([("manager", recorded["manager_error"])] if recorded.get("manager_error") else []),
            ("monitors", f"{monitors.get('total')} (quorum: {quorum})"),
            ("osds", f"{counts.get('total')} total, {counts.get('up')} up, {counts.get('in')} in"),
            ("flags", ", ".join(recorded.get("flags") or []) or None),
            ("pgs", f"{pgs.get('total')} total" + (f": {states}" if states else "")),
            ("client i/o", f"{read}, {write}"),
            ("recovery", _recovery(recorded.get("recovery") or {})),
            ("collected", _collected(answer)),
        ]
    )
    checks = recorded.get("checks") or {}
    if checks:
        rows = [
            [name, check.get("severity"), check.get("summary")] for name, check in checks.items()
        ]
        text += "\n\nwarnings:\n" + table(("CHECK", "SEVERITY", "SUMMARY"), rows)
    return _with_note(answer, text)


def util_text(answer: dict[str, Any]) -> str:
    """The pretty form of GET /storage/ceph/utilization."""
    util = answer["utilization"]
    if not util:
        return _freshness_note(answer) or "no Ceph utilisation"
    raw = util.get("raw") or {}
    lines = [
        f"raw: {_size(raw.get('total_bytes'))} total, {_size(raw.get('used_bytes'))} used "
        f"({_percent(raw.get('used_percent'))}), {_size(raw.get('avail_bytes'))} available"
    ]
    classes = util.get("classes") or {}
    if classes:
        rows = [
            [name, _size(c.get("total_bytes")), _size(c.get("used_bytes")),
             _size(c.get("avail_bytes")), _percent(c.get("used_percent"))]
            for name, c in sorted(classes.items())
        ]  # fmt: skip
        lines += ["", table(CLASS_HEADERS, rows)]
    pools = util.get("pools") or {}
    rows = [
        [name, pool.get("id"), _size(pool.get("stored_bytes")), _size(pool.get("used_bytes")),
         _size(pool.get("max_avail_bytes")), _percent(pool.get("used_percent")),
         pool.get("objects")]
        for name, pool in sorted(pools.items())
    ]  # fmt: skip
    lines += ["", table(POOL_HEADERS, rows) if rows else "no pools"]
    return _with_note(answer, "\n".join(lines))


def _freshness_note(answer: dict[str, Any]) -> str | None:
    """A warning line when the data is stale or absent (its message says why)."""
    return None if answer["freshness"] == "current" else f"note: {answer['message']}"


def _with_note(answer: dict[str, Any], text: str) -> str:
    note = _freshness_note(answer)
    return f"{note}\n{text}" if note else text


def _collected(answer: dict[str, Any]) -> str | None:
    return None if answer["age"] is None else f"{answer['age']:.1f} s ago"


def _recovery(recovery: dict[str, Any]) -> str | None:
    parts = [
        f"{recovery[name]} {label}"
        for name, label in (
            ("degraded_objects", "objects degraded"),
            ("misplaced_objects", "objects misplaced"),
            ("unfound_objects", "objects unfound"),
        )
        if recovery.get(name)
    ]
    if recovery.get("recovering_bytes_per_sec"):
        parts.append(f"recovering at {_rate(recovery['recovering_bytes_per_sec'])}")
    return ", ".join(parts) or None


def _size(value: Any) -> str | None:
    return None if value is None else format_size(int(value))


def _rate(value: Any) -> str:
    return f"{format_size(int(value or 0))}/s"


def _percent(value: Any) -> str | None:
    return None if value is None else f"{value:.1f}%"
