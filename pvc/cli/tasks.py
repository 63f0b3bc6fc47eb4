"""Tasks in the CLI: their list and info texts, and following one to its end (`--wait`).

Following: long polls of GET /tasks/<task>?wait=...&since=... (the API answers when the task
changes), shown as a progress bar on a terminal, a plain line per step otherwise, nothing at
all for JSON output. An API that does not answer (it moves with the primary role) is asked
again; a task that shows no change for `stall` seconds is given up on. The end: done returns
the record; failed and cancelled raise PvcError (exit 1) with the task's error.
"""

from __future__ import annotations

import sys
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, TextIO

from pvc.cli.format import key_values, render, table
from pvc.errors import PvcError, Unavailable
from pvc.limits import one_line

if TYPE_CHECKING:
    from pvc.cli.client import ApiClient

ENDED = ("done", "failed", "cancelled")
POLL_SECONDS = 10.0  # one long poll; the API answers sooner when the task changes
STALL_SECONDS = 600.0
RETRY_SECONDS = 0.5  # before asking an API that did not answer again
BAR_WIDTH = 30
LIST_HEADERS = ("ID", "KIND", "RUNNER", "STATE", "PROGRESS", "MESSAGE")


def task_path(task: str) -> str:
    return f"/tasks/{urllib.parse.quote(task, safe='')}"


# --- texts ------------------------------------------------------------------------------------


def _progress(record: dict[str, Any]) -> str:
    progress = record["progress"]
    return f"{progress['current']}/{progress['total']}"


def _when(stamp: float | None) -> str | None:
    return None if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def list_text(records: list[dict[str, Any]]) -> str:
    """The pretty form of GET /tasks: one row per task, newest first."""
    rows = [
        [r["id"], r["kind"], r["runner"], r["state"], _progress(r),
         r["error"] or r["progress"]["message"]]
        for r in records
    ]  # fmt: skip
    return table(LIST_HEADERS, rows) if rows else "no tasks"


def info_text(record: dict[str, Any]) -> str:
    """The pretty form of GET /tasks/<task>."""
    args = ", ".join(f"{name}={value}" for name, value in sorted(record["args"].items()))
    return key_values(
        [
            ("id", record["id"]),
            ("kind", record["kind"]),
            ("arguments", args or None),
            ("runner", record["runner"]),
            ("state", record["state"]),
            ("progress", f"{_progress(record)} {record['progress']['message']}"),
            ("created", _when(record["created"])),
            ("started", _when(record["started"])),
            ("finished", _when(record["finished"])),
            ("attempts", record["attempts"]),
            ("cancel requested", record.get("cancel_requested")),
            ("result", record["result"]),
            ("error", record["error"]),
        ]
    )


def bar_line(record: dict[str, Any], width: int = BAR_WIDTH) -> str:
    """One line of a progress bar: [####------] 3/10 message."""
    progress = record["progress"]
    total, current = progress["total"], progress["current"]
    filled = width if record["state"] == "done" else (width * current // total if total else 0)
    bar = "#" * filled + "-" * (width - filled)
    return f"[{bar}] {_progress(record)} {one_line(progress['message'])}"


def step_line(record: dict[str, Any]) -> str:
    """One plain line per step: 3/10 message (state)."""
    return f"{_progress(record)} {one_line(record['progress']['message'])} ({record['state']})"


# --- following --------------------------------------------------------------------------------


class Display:
    """Shows a task's progress as it changes: `bar` (rewritten in place), `lines`, or None."""

    def __init__(self, style: str | None, out: TextIO):
        self.style = style
        self.out = out
        self._last = ""

    def show(self, record: dict[str, Any]) -> None:
        if self.style is None:
            return
        if self.style == "bar":
            line = bar_line(record)
            if line != self._last:
                self.out.write("\r" + line.ljust(len(self._last)))
                self.out.flush()
        else:
            line = step_line(record)
            if line != self._last:
                print(line, file=self.out, flush=True)
        self._last = line

    def close(self) -> None:
        if self.style == "bar" and self._last:
            print(file=self.out, flush=True)


def style_for(output_format: str, out: TextIO) -> str | None:
    """No display for JSON output; a bar on a terminal; plain lines otherwise."""
    if output_format != "pretty":
        return None
    return "bar" if out.isatty() else "lines"


def follow(
    api: ApiClient,
    task: str,
    style: str | None,
    out: TextIO = sys.stdout,
    stall: float = STALL_SECONDS,
) -> dict[str, Any]:
    """Follows the task until it ends; returns its record if done, raises PvcError if it
    failed, was cancelled, or showed no change for `stall` seconds."""
    from pvc.cli.client import ApiClient

    # each request may take a long poll's time to answer
    api = ApiClient(api.connection, insecure=api.insecure, read_timeout=POLL_SECONDS + 10)
    display = Display(style, out)
    record: dict[str, Any] | None = None
    changed = time.monotonic()
    try:
        while record is None or record["state"] not in ENDED:
            params = {} if record is None else {"wait": POLL_SECONDS, "since": record["updated"]}
            try:
                new = api.get(task_path(task), params)
            except Unavailable:
                new = None
                time.sleep(RETRY_SECONDS)
            if new is not None and (record is None or new["updated"] != record["updated"]):
                record, changed = new, time.monotonic()
                display.show(record)
            if time.monotonic() - changed > stall:
                where = "unknown" if record is None else step_line(record)
                raise PvcError(
                    f"task {task} showed no progress for {stall:g} s (now: {where}); "
                    f"see 'pvc cluster task info {task}'"
                )
    finally:
        display.close()
    if record["state"] == "failed":
        raise PvcError(f"task {task} failed: {record['error']}")
    if record["state"] == "cancelled":
        raise PvcError(f"task {task} was cancelled ({record['progress']['message']})")
    return record


def show_or_follow(api: ApiClient, answer: dict[str, Any], wait: bool, output_format: str) -> int:
    """Prints the answer of a request that made a task ({"message", "task"}); with `wait`,
    follows the task to its end and prints its record (or the time it took)."""
    if not wait or answer["task"] is None:
        print(render(answer, output_format, lambda document: document["message"]))
        return 0
    started = time.monotonic()
    if output_format == "pretty":
        print(answer["message"], flush=True)
    record = follow(api, answer["task"], style_for(output_format, sys.stdout))
    print(render(record, output_format, lambda _: f"done in {time.monotonic() - started:.1f} s"))
    return 0
