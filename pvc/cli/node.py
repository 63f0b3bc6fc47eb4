"""Usage:
  pvc node run
  pvc node list [<limit>] [--format FORMAT]
  pvc node info <name> [--format FORMAT]
  pvc node primary <name> [--wait]
  pvc node secondary <name> [--force] [--wait]
  pvc node flush <name> [--wait] [--format FORMAT]
  pvc node (ready | unflush) <name> [--wait] [--format FORMAT]
  pvc node -h | --help

Commands:
  run        Run the node daemon in the foreground, on the node configuration (--config or
             $PVC_CONFIG).
  list       The nodes, or only those whose name contains <limit>.
  info       One node's states, liveness, version, hardware and resource use.
  primary    Make a live coordinator the primary: the current primary hands its role over.
  secondary  Make the primary give up its role to another live coordinator; refused when no
             other coordinator can take over, unless --force.
  flush      Move every VM off the node (one at a time), e.g. before maintenance: a task
             its daemon runs (see 'pvc cluster task'); a new flush or ready cancels it.
  ready      Take the node's VMs back (those migrated away by a flush) and start its
             autostart VMs; unflush is the same.

Options:
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
  -w, --wait                  wait until the role has moved (at most 30 s), or follow the
                              flush or ready task to its end (a progress bar on a terminal, a
                              line per step otherwise; exit 1 if it fails or is cancelled)
  --force                     give up the primary role even if no coordinator can take over
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pvc.cli import client, tasks
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.parse import parse
from pvc.errors import PvcError, Unavailable

if TYPE_CHECKING:
    from pvc.__main__ import Globals

WAIT_TIMEOUT = 30.0
POLL_INTERVAL = 0.2
# Polls during --wait give up quickly: the API moves with the primary role and may not answer.
POLL_REQUEST_TIMEOUT = 2.0
LIST_HEADERS = (
    "NAME", "MODE", "DAEMON", "COORDINATOR", "DOMAIN", "ALIVE", "KEEPALIVE", "VERSION", "LOAD",
    "MEMORY (MiB)", "VMS",
)  # fmt: skip


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "node")
    if arguments["run"]:
        from pvc import zipapp
        from pvc.node import daemon

        zipapp.pin()  # an upgrade of dist/pvc must not pull code from under the running daemon
        return daemon.main(options.config)
    api = client.for_options(options)
    name = arguments["<name>"]
    if arguments["list"]:
        output_format = check_format(arguments["--format"])
        nodes = api.get("/node", {"limit": arguments["<limit>"]})
        print(render(nodes, output_format, list_text))
        return 0
    if arguments["info"]:
        output_format = check_format(arguments["--format"])
        print(render(api.get(node_path(name)), output_format, info_text))
        return 0
    if arguments["flush"] or arguments["ready"] or arguments["unflush"]:
        action = "flush" if arguments["flush"] else "ready"
        output_format = check_format(arguments["--format"])
        return set_domain_state(api, name, action, arguments["--wait"], output_format)
    return move_role(
        api,
        name,
        primary=arguments["primary"],
        force=arguments["--force"],
        wait=arguments["--wait"],
    )


def move_role(api: client.ApiClient, name: str, *, primary: bool, force: bool, wait: bool) -> int:
    """Asks for the primary role to move to `name` (or away from it); `wait` until it has."""
    params = {"state": "primary" if primary else "secondary", "force": force}
    print(api.post(node_path(name, "/coordinator-state"), params)["message"])
    if not wait:
        return 0
    goal = "become primary" if primary else "give up the primary role"
    print(f"waiting for {name} to {goal}...", end="", flush=True)
    poller = client.ApiClient(
        api.connection,
        insecure=api.insecure,
        connect_timeout=POLL_REQUEST_TIMEOUT,
        read_timeout=POLL_REQUEST_TIMEOUT,
    )
    try:
        took = wait_for_role(poller, name, primary)
    except PvcError:
        print()
        raise
    print(f" done in {took:.1f} s")
    return 0


def node_path(name: str, tail: str = "") -> str:
    """The API path of a node (its name URL-quoted), plus `tail`."""
    return f"/node/{urllib.parse.quote(name, safe='')}{tail}"


def role_moved(status: dict[str, Any], name: str, primary: bool) -> bool:
    """Whether GET /status shows the move done: `name` (or, for secondary, another node) is the
    cluster's primary and in coordinator state primary, and `name` has finished its part."""
    states = {node["name"]: node["coordinator_state"] for node in status["nodes"]["list"]}
    holder = status["primary_node"]
    if primary:
        return holder == name and states.get(name) == "primary"
    return (
        holder not in (None, name)
        and states.get(holder) == "primary"
        and states.get(name) == "secondary"
    )


def wait_for_role(
    api: client.ApiClient, name: str, primary: bool, timeout: float = WAIT_TIMEOUT
) -> float:
    """Polls GET /status until `role_moved`; returns the seconds taken."""
    goal = "become primary" if primary else "hand the primary role to another node"
    return poll_until(
        lambda: role_moved(api.get("/status"), name, primary),
        timeout,
        f"{name} did not {goal} within {timeout:g} s; see 'pvc cluster status'",
    )


def poll_until(done: Callable[[], bool], timeout: float, failure: str) -> float:
    """Calls `done` until it is true; returns the seconds taken.

    An API that does not answer is polled again (it moves with the primary role); after
    `timeout` seconds, raises PvcError(`failure`).
    """
    started = time.monotonic()
    while True:
        try:
            if done():
                return time.monotonic() - started
        except Unavailable:
            pass
        if time.monotonic() - started >= timeout:
            raise PvcError(failure)
        time.sleep(POLL_INTERVAL)


def set_domain_state(
    api: client.ApiClient, name: str, action: str, wait: bool, output_format: str
) -> int:
    """Flush a node or make it ready; `wait`: follow its task to the end."""
    answer = api.post(node_path(name, "/domain-state"), {"state": action})
    return tasks.show_or_follow(api, answer, wait, output_format)


def list_text(nodes: list[dict[str, Any]]) -> str:
    """The pretty form of GET /node: one row per node."""
    rows = []
    for node in nodes:
        stats = node["stats"] or {}
        rows.append(
            [
                node["name"],
                node["mode"],
                node["daemon_state"],
                node["coordinator_state"],
                node["domain_state"],
                node["alive"],
                _age(node["keepalive_age"]),
                node["version"],
                stats.get("load"),
                _ratio(stats.get("mem_used"), stats.get("mem_total")),
                _ratio(stats.get("vms_running"), stats.get("vms_total")),
            ]
        )
    return table(LIST_HEADERS, rows) if rows else "no nodes"


def info_text(node: dict[str, Any]) -> str:
    """The pretty form of GET /node/<name>: one labelled line per field."""
    static = node["static"] or {}
    stats = node["stats"] or {}
    return key_values(
        [
            ("name", node["name"]),
            ("mode", node["mode"]),
            ("daemon state", node["daemon_state"]),
            ("coordinator state", node["coordinator_state"]),
            ("domain state", node["domain_state"]),
            ("alive", node["alive"]),
            ("last keepalive", _age(node["keepalive_age"], " ago")),
            ("pvc version", node["version"]),
            ("cpu cores", static.get("cores")),
            ("kernel", static.get("kernel")),
            ("os", static.get("os")),
            ("architecture", static.get("arch")),
            ("load", stats.get("load")),
            ("memory total", _mib(stats.get("mem_total"))),
            ("memory used", _mib(stats.get("mem_used"))),
            ("memory free", _mib(stats.get("mem_free"))),
            ("memory allocated", _mib(stats.get("mem_allocated"))),
            ("memory provisioned", _mib(stats.get("mem_provisioned"))),
            ("vcpus allocated", stats.get("vcpus_allocated")),
            ("vms running/total", _ratio(stats.get("vms_running"), stats.get("vms_total"))),
        ]
    ) + _fence_log_text(node["fence_log"])


def _fence_log_text(entries: list[dict[str, Any]]) -> str:
    """The node's fencing history, newest last (nothing if it was never fenced)."""
    if not entries:
        return ""
    rows = [
        [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["time"])), e["event"], e["detail"]]
        for e in entries
    ]
    return "\n\nfencing history:\n" + table(("TIME", "EVENT", "DETAIL"), rows)


def _age(seconds: float | None, suffix: str = "") -> str | None:
    return None if seconds is None else f"{seconds:.1f} s{suffix}"


def _mib(value: int | None) -> str | None:
    return None if value is None else f"{value} MiB"


def _ratio(part: Any, whole: Any) -> str | None:
    return None if part is None or whole is None else f"{part}/{whole}"
