"""Usage:
  pvc cluster init [--name NAME] [--overwrite] [--yes]
  pvc cluster status [--format FORMAT]
  pvc cluster maintenance (on | off)
  pvc cluster task list [--kind KIND] [--state STATE] [--format FORMAT]
  pvc cluster task info <task> [--format FORMAT]
  pvc cluster task cancel <task>
  pvc cluster -h | --help

Commands:
  init         Create the cluster's Zookeeper tree. An initialised cluster is refused unless
               --overwrite, which wipes ALL cluster data (asks first unless --yes).
  status       The cluster's name, versions, maintenance mode, primary node and nodes.
  maintenance  Turn maintenance mode on or off (suppresses fencing and automatic actions).
  task         The cluster's tasks (flush, ready, OSD add/remove, upload ...), newest
               first; one task's progress, result or error; cancel one (a queued task at
               once, a running one after its current step).

Options:
  --name NAME                 the cluster's name [default: pvc]
  --overwrite                 wipe an initialised cluster and start afresh
  -y, --yes                   do not ask for confirmation
  --kind KIND                 only tasks of this kind (flush, unflush, osd_add,
                              osd_remove, upload)
  --state STATE               only tasks in this state (queued, running, done, failed,
                              cancelled)
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from pvc.cli import client, tasks
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.parse import parse
from pvc.errors import PvcError

if TYPE_CHECKING:
    from pvc.__main__ import Globals

ANSWER_MAX = 100  # bytes of an answer read: a long line is not a yes
OVERWRITE_QUESTION = "Wipe ALL cluster data and reinitialise? [y/N] "


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "cluster")
    if arguments["task"]:
        return task(client.for_options(options), arguments)
    if arguments["status"]:
        output_format = check_format(arguments["--format"])
        status = client.for_options(options).get("/status")
        print(render(status, output_format, status_text))
        return 0
    if arguments["init"]:
        overwrite = arguments["--overwrite"]
        if overwrite:
            confirm_or_stop(OVERWRITE_QUESTION, arguments["--yes"], "aborted")
        params = {"overwrite": overwrite, "name": arguments["--name"]}
        answer = client.for_options(options).post("/initialize", params)
    else:
        answer = client.for_options(options).post("/status", {"maintenance": arguments["on"]})
    print(answer["message"])
    return 0


def task(api: client.ApiClient, arguments: dict[str, Any]) -> int:
    """`pvc cluster task list|info|cancel`."""
    if arguments["cancel"]:
        print(api.request("DELETE", tasks.task_path(arguments["<task>"]))["message"])
        return 0
    output_format = check_format(arguments["--format"])
    if arguments["list"]:
        params = {"kind": arguments["--kind"], "state": arguments["--state"]}
        print(render(api.get("/tasks", params), output_format, tasks.list_text))
    else:
        record = api.get(tasks.task_path(arguments["<task>"]))
        print(render(record, output_format, tasks.info_text))
    return 0


def confirm(question: str) -> bool:
    """Asks on standard error, reads a line of standard input; only y or yes is a yes (any
    other bytes, UTF-8 or not, are a no)."""
    print(question, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.buffer.readline(ANSWER_MAX).decode("utf-8", errors="replace")
    return answer.strip().lower() in ("y", "yes")


def confirm_or_stop(question: str, yes: bool, stopped: str = "not removed") -> None:
    """Goes on when `yes` (the command's --yes) or when the user answers yes to `question`;
    otherwise stops the command with `stopped` (exit 1)."""
    if not yes and not confirm(question):
        raise PvcError(stopped)


def status_text(status: dict[str, Any]) -> str:
    """The pretty form of GET /status: a summary block, then a table of the nodes."""
    nodes = status["nodes"]
    by_state = ", ".join(f"{state} {count}" for state, count in sorted(nodes["by_state"].items()))
    summary = key_values(
        [
            ("cluster", status["cluster"]),
            ("pvc version", status["pvc_version"]),
            ("schema version", status["schema_version"]),
            ("maintenance", "on" if status["maintenance"] else "off"),
            ("primary node", status["primary_node"]),
            ("nodes", f"{nodes['total']}" + (f" ({by_state})" if by_state else "")),
            ("vms", status["vms"]["total"]),
            ("networks", status["networks"]["total"]),
            ("N+1", _n_plus_one(status["survives_node_loss"])),
        ]
    )
    if not nodes["list"]:
        return summary
    columns = ("name", "daemon_state", "coordinator_state")
    rows = [[node[column] for column in columns] for node in nodes["list"]]
    text = summary + "\n\n" + table(("NODE", "DAEMON", "COORDINATOR"), rows)
    if status["fencing"]:
        fenced = [
            [node["name"], node["daemon_state"], (node["last_event"] or {}).get("detail")]
            for node in status["fencing"]
        ]
        text += "\n\ndead or fenced nodes:\n" + table(("NODE", "STATE", "LAST EVENT"), fenced)
    return text


def _n_plus_one(report: dict[str, Any]) -> str:
    """Whether the running VMs survive the loss of the largest node, with the numbers."""
    verdict = "yes" if report["ok"] else "NO"
    largest = report.get("largest_node")
    without = f"without {largest}" if largest else "with no usable node"
    return (
        f"{verdict}: {report['allocated']} MiB of running VMs, "
        f"{report['capacity_without_largest']} MiB {without}"
    )
