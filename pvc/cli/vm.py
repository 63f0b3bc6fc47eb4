"""Usage:
  pvc vm define <xmlfile> [--node NODE] [--limit NODES] [--selector SEL] [--autostart]
                [--method METHOD] [--tag TAG]...
  pvc vm modify <vm> <xmlfile> [--restart]
  pvc vm meta <vm> [--limit NODES] [--selector SEL] [--autostart | --no-autostart]
              [--method METHOD]
  pvc vm rename <vm> <new_name>
  pvc vm undefine <vm> [--force]
  pvc vm remove <vm> [--force] [--delete-disks] [--yes]
  pvc vm start <vm> [--force] [--wait [--timeout SECONDS]]
  pvc vm restart <vm> [--wait [--timeout SECONDS]]
  pvc vm shutdown <vm> [--force] [--wait [--timeout SECONDS]]
  pvc vm stop <vm> [--wait [--timeout SECONDS]]
  pvc vm disable <vm> [--wait [--timeout SECONDS]]
  pvc vm move <vm> [<node>] [--wait [--timeout SECONDS]]
  pvc vm migrate <vm> [<node>] [--force] [--wait [--timeout SECONDS]]
  pvc vm unmigrate <vm> [--wait [--timeout SECONDS]]
  pvc vm info <vm> [--format FORMAT]
  pvc vm list [<match> [--regex]] [--node NODE] [--state STATE] [--format FORMAT]
  pvc vm dump <vm>
  pvc vm log <vm> [--lines LINES] [--follow]
  pvc vm tag <vm> [--add TAG]... [--remove TAG]...
  pvc vm flush-locks <vm> [--format FORMAT]
  pvc vm -h | --help

A <vm> is a VM's name or UUID. Asking for what already holds (start of a running VM, stop or
shutdown of a stopped or disabled one) changes nothing and says so; a disabled VM stays
disabled until started with --force.

Commands:
  define     Add a VM, stopped, from its libvirt domain XML (<xmlfile>, or - for standard
             input); it is assigned to --node, or to the node its selector picks. The XML
             must be UTF-8 and no larger than the API accepts (see the README's limits).
  modify     Replace a VM's XML (same UUID and <name>: use rename to rename it); --restart
             restarts a running VM to apply it, if its node's memory allows (as for start).
  meta       Change a VM's placement settings; without options, show them.
  rename     Rename a stopped VM.
  undefine   Remove a VM's definition; a running VM only with --force (its node destroys it).
  remove     Like undefine, asking first unless --yes; with --delete-disks, the VM (which
             must be stopped) goes with its RBD volumes and their snapshots.
  start      Start a VM on its node; a disabled VM only with --force.
  restart    Restart a running VM.
  shutdown   Shut a VM down gracefully; --force turns it off if the guest does not stop in time.
  stop       Turn a VM off at once.
  disable    Turn a VM off and keep it off (autostart and recovery leave it alone).
  move       Move a VM to <node> (or the node its selector picks) for good.
  migrate    Move a VM for a while: unmigrate brings it back; --force migrates an already
             migrated VM again.
  unmigrate  Move a migrated VM back to the node it came from.
  info       One VM's state, node, placement settings, resources and tags.
  list       The VMs, or those whose whole name matches the shell glob <match> (*, ?, [abc],
             [!abc]; any other character, '.' too, stands for itself); with --regex, <match>
             is a regular expression searched anywhere in the name (anchor it with ^ and $).
  dump       Print a VM's libvirt domain XML.
  log        Print the last lines of a VM's serial console; --follow keeps printing new lines
             until interrupted.
  tag        Add and remove a VM's tags; without options, show them.
  flush-locks  Break the RBD locks on a VM's volumes (refused while the VM runs anywhere):
             after a storage fence a recovered VM takes its locks itself; this is for
             locks left behind otherwise.

Options:
  --node NODE                 define: the node to assign; list: only VMs on this node
  --limit NODES               comma-separated nodes the VM may run on (empty: any)
  --selector SEL              how to choose its node: mem, memprov, load, vcpus or vms;
                              default (or empty): the cluster's vm.default_selector
  --autostart                 start the VM whenever its node becomes ready
  --no-autostart              do not start it automatically
  --method METHOD             how to move it between nodes: live, shutdown or none
  --tag TAG                   a tag (repeat for more)
  --add TAG                   a tag to add (repeat for more)
  --remove TAG                a tag to remove (repeat for more)
  --restart                   restart the VM if it runs
  --force                     see the command
  --delete-disks              remove the VM's RBD volumes too (the VM must be stopped)
  -y, --yes                   do not ask for confirmation
  -w, --wait                  wait until the VM got there; if it is still on its way when
                              the wait runs out, say where it is and exit 1
  --timeout SECONDS           how long --wait waits at most (default 120 s; shutdown,
                              restart and moves 200 s)
  --regex                     <match> is a regular expression
  --state STATE               only VMs in this state
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
  -l LINES, --lines LINES     how many lines [default: 100]
  --follow                    keep printing new lines (every second) until interrupted
"""

from __future__ import annotations

import sys
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from pvc import limits
from pvc.cli import client
from pvc.cli.cluster import confirm
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.input_files import read_input
from pvc.cli.parse import parse
from pvc.errors import PvcError, Unavailable, UsageError
from pvc.ops.vm_goals import GOALS, arrived, failed, progress

if TYPE_CHECKING:
    from pvc.__main__ import Globals

WAIT_TIMEOUT = 120.0
SHUTDOWN_WAIT_TIMEOUT = 200.0  # a graceful shutdown may take timers.vm_shutdown_timeout (180 s)
POLL_INTERVAL = 0.5
POLL_REQUEST_TIMEOUT = 2.0  # the API moves with the primary role and may not answer a while
FOLLOW_INTERVAL = 1.0
FOLLOW_LINES = 1000  # lines fetched per poll of --follow, to find where the last poll ended
STATE_VERBS = ("start", "restart", "shutdown", "stop", "disable")
NODE_VERBS = ("move", "migrate", "unmigrate")
REMOVE_QUESTION = "Remove VM '{vm}'? Its disks stay. [y/N] "
REMOVE_DISKS_QUESTION = "Remove VM '{vm}' AND DELETE its volumes and their snapshots? [y/N] "
REASON_WIDTH = 40
LIST_HEADERS = (
    "NAME", "STATE", "NODE", "LASTNODE", "MEMORY (MiB)", "VCPUS", "AUTOSTART", "OBSERVED",
    "FAILED REASON",
)  # fmt: skip


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "vm")
    lines = _count(arguments["--lines"])
    timeout = _seconds(arguments["--timeout"])
    if arguments["--regex"] and arguments["<match>"] is None:
        raise UsageError("--regex needs a <match> pattern; see 'pvc vm --help'")
    if timeout is not None and not arguments["--wait"]:
        raise UsageError("--timeout applies only with --wait; see 'pvc vm --help'")
    # a bad file is refused before any connection is looked for
    xml = read_xml(arguments["<xmlfile>"]) if arguments["<xmlfile>"] else None
    api = client.for_options(options)
    vm = arguments["<vm>"]
    if arguments["list"]:
        params = {
            "node": arguments["--node"],
            "state": arguments["--state"],
            "match": arguments["<match>"],
            "regex": arguments["--regex"] or None,
        }
        listed = api.get("/vm", params)
        print(render(listed, check_format(arguments["--format"]), list_text))
    elif arguments["info"]:
        print(render(api.get(vm_path(vm)), check_format(arguments["--format"]), info_text))
    elif arguments["dump"]:
        xml = api.get(vm_path(vm, "/xml"))["xml"]
        sys.stdout.write(xml if xml.endswith("\n") else xml + "\n")
    elif arguments["log"]:
        show_log(api, vm, lines, arguments["--follow"])
    elif arguments["tag"]:
        changes = {"add": ",".join(arguments["--add"]), "remove": ",".join(arguments["--remove"])}
        if any(changes.values()):
            tags = api.post(vm_path(vm, "/tags"), changes)["tags"]
        else:
            tags = api.get(vm_path(vm, "/tags"))["tags"]
        print(", ".join(tags) or "no tags")
    elif arguments["flush-locks"]:
        answer = api.post(vm_path(vm, "/locks"))
        print(render(answer, check_format(arguments["--format"]), locks_text))
    elif arguments["meta"] and not _meta_params(arguments):
        print(meta_text(api.get(vm_path(vm, "/meta"))))
    elif any(arguments[verb] for verb in STATE_VERBS + NODE_VERBS):
        return change(api, arguments, timeout)
    else:
        print(edit(api, arguments, xml)["message"])
    return 0


def edit(api: client.ApiClient, arguments: dict[str, Any], xml: str | None) -> dict[str, Any]:
    """define, modify (with the file's `xml`), meta, rename, undefine and remove: one request
    each."""
    vm = arguments["<vm>"]
    if arguments["define"]:
        params = {
            "xml": xml,
            "node": arguments["--node"],
            "tags": ",".join(arguments["--tag"]) or None,
        }
        return api.post("/vm", params | _meta_params(arguments))
    if arguments["modify"]:
        params = {"xml": xml, "restart": arguments["--restart"]}
        return api.request("PUT", vm_path(vm), params)
    if arguments["meta"]:
        return api.post(vm_path(vm, "/meta"), _meta_params(arguments))
    if arguments["rename"]:
        return api.post(vm_path(vm, "/rename"), {"new_name": arguments["<new_name>"]})
    asked = arguments["remove"] and not arguments["--yes"]
    delete_disks = bool(arguments["remove"] and arguments["--delete-disks"])
    question = REMOVE_DISKS_QUESTION if delete_disks else REMOVE_QUESTION
    if asked and not confirm(question.format(vm=vm)):
        raise PvcError("aborted")
    params = {"force": arguments["--force"]} | ({"delete_disks": True} if delete_disks else {})
    return api.request("DELETE", vm_path(vm), params)


def _meta_params(arguments: dict[str, Any]) -> dict[str, Any]:
    """The placement options given (define, meta), as API parameters."""
    params = {
        "limit": arguments["--limit"],
        "selector": arguments["--selector"],
        "migration_method": arguments["--method"],
    }
    if arguments["--autostart"] or arguments["--no-autostart"]:
        params["autostart"] = arguments["--autostart"]
    return {name: value for name, value in params.items() if value is not None}


def read_xml(path: str) -> str:
    """The text of `path`, or of standard input for '-'; refused (exit 2) unless it is UTF-8
    text of at most limits.XML_MAX bytes."""
    return read_input(path, limits.XML_MAX, "the domain XML")


def _count(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--lines must be a whole number, not {text!r}") from None


def vm_path(vm: str, tail: str = "") -> str:
    """The API path of a VM (its name or UUID URL-quoted), plus `tail`."""
    return f"/vm/{urllib.parse.quote(vm, safe='')}{tail}"


# --- state changes and --wait ----------------------------------------------------------------


def change(api: client.ApiClient, arguments: dict[str, Any], timeout: float | None) -> int:
    """A state change or move; with --wait, follows the VM until it got there (or `timeout`
    seconds passed, if given)."""
    vm = arguments["<vm>"]
    verb = next(verb for verb in STATE_VERBS + NODE_VERBS if arguments[verb])
    force = arguments["--force"] or None
    if verb in STATE_VERBS:
        answer = api.post(vm_path(vm, "/state"), {"state": verb, "force": force})
    else:
        params = {"action": verb, "node": arguments["<node>"], "force": force}
        answer = api.post(vm_path(vm, "/node"), params)
    print(answer["message"])
    if arguments["--wait"]:
        wait(_poller(api), answer.get("uuid") or vm, verb, timeout)
    return 0


def _seconds(text: str | None) -> float | None:
    """--timeout as seconds (None: not given)."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise UsageError(f"--timeout must be a positive number of seconds, not {text!r}")
    return seconds


def _poller(api: client.ApiClient) -> client.ApiClient:
    """A client of the same API whose requests give up quickly, for polling."""
    return client.ApiClient(
        api.connection,
        insecure=api.insecure,
        connect_timeout=POLL_REQUEST_TIMEOUT,
        read_timeout=POLL_REQUEST_TIMEOUT,
    )


def wait(api: client.ApiClient, vm: str, verb: str, timeout: float | None = None) -> float:
    """Polls the VM until it arrived where `verb` sends it (pvc.ops.vm_goals: the rule the
    API's waits use too), printing progress; returns the seconds taken.

    Raises PvcError when it failed (e.g. state fail: with the reason), or after `timeout`
    seconds (default: 200 s for what involves a shutdown, else 120 s), saying it is still on
    its way and where it is now.
    """
    goal = GOALS[verb]
    if timeout is None:
        slow = verb in ("restart", "shutdown", *NODE_VERBS)
        timeout = SHUTDOWN_WAIT_TIMEOUT if slow else WAIT_TIMEOUT
    started = time.monotonic()
    record = _poll(api, vm, started + timeout)
    text = goal.text.format(node=record["node"])
    print(f"waiting for {record['name']} to {text}...", end="", flush=True)
    try:
        while not arrived(record, goal):
            if failed(record, goal):
                reason = record["failed_reason"] or "see 'pvc vm info'"
                raise PvcError(
                    f"{record['name']} did not {text}: state {record['state']} ({reason})"
                )
            if time.monotonic() - started >= timeout:
                raise PvcError(
                    f"{record['name']} is still on its way to {text} after {timeout:g} s "
                    f"(now: {progress(record)}); see 'pvc vm info {record['name']}'"
                )
            time.sleep(POLL_INTERVAL)
            record = _poll(api, vm, started + timeout)
    except PvcError:
        print()
        raise
    took = time.monotonic() - started
    print(f" done in {took:.1f} s")
    return took


def _poll(api: client.ApiClient, vm: str, deadline: float) -> dict[str, Any]:
    """The VM's record; an API that does not answer is asked again until `deadline`."""
    while True:
        try:
            return api.get(vm_path(vm))
        except Unavailable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(POLL_INTERVAL)


# --- console log -----------------------------------------------------------------------------


def show_log(api: client.ApiClient, vm: str, lines: int, follow: bool) -> None:
    """Prints the last `lines` console lines; `follow`: then new ones every second, forever."""
    shown = api.get(vm_path(vm, "/console"), {"lines": lines})["lines"]
    _print_lines(shown)
    if not follow:
        return
    poller = _poller(api)
    while True:
        time.sleep(FOLLOW_INTERVAL)
        try:
            current = poller.get(vm_path(vm, "/console"), {"lines": FOLLOW_LINES})["lines"]
        except Unavailable:
            continue
        _print_lines(new_lines(shown, current))
        shown = current


def new_lines(before: list[str], now: list[str]) -> list[str]:
    """The lines of `now` after its longest overlap with the end of `before`."""
    for overlap in range(min(len(before), len(now)), 0, -1):
        if before[-overlap:] == now[:overlap]:
            return now[overlap:]
    return now


def _print_lines(lines: list[str]) -> None:
    if lines:
        print("\n".join(lines), flush=True)


# --- pretty output ---------------------------------------------------------------------------


def _observed(record: dict[str, Any]) -> str | None:
    observed = record["observed"]
    return f"{observed.get('state')}@{observed.get('node')}" if observed else None


def _short(text: str | None) -> str | None:
    return limits.one_line(text, REASON_WIDTH) if text else None


def list_text(vms: list[dict[str, Any]]) -> str:
    """The pretty form of GET /vm: one row per VM."""
    rows = [
        [
            vm["name"],
            vm["state"],
            vm["node"],
            vm["lastnode"] or None,
            vm["memory"],
            vm["vcpus"],
            vm["node_autostart"],
            _observed(vm),
            _short(vm["failed_reason"]),
        ]
        for vm in vms
    ]
    return table(LIST_HEADERS, rows) if rows else "no VMs"


def _meta_pairs(record: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("node limit", ", ".join(record["node_limit"]) or "any node"),
        ("node selector", record["node_selector"] or "cluster default"),
        ("autostart", record["node_autostart"]),
        ("migration method", record["migration_method"]),
    ]


def locks_text(answer: dict[str, Any]) -> str:
    """The pretty form of POST /vm/<vm>/locks: the message, then each volume's broken locks."""
    lines = [answer["message"]]
    for entry in answer["volumes"]:
        broken = "not in Ceph" if entry["missing"] else ", ".join(entry["broken"]) or "no lock"
        lines.append(f"  {entry['volume']}: {broken}")
    return "\n".join(lines)


def meta_text(record: dict[str, Any]) -> str:
    """The pretty form of GET /vm/<vm>/meta."""
    return key_values([("name", record["name"]), *_meta_pairs(record)])


def _nic_text(nic: dict[str, Any]) -> str:
    """A NIC as `MAC on BRIDGE (network VNI, ADDRESS)`."""
    network = (
        "" if nic["vni"] is None else f" (network {nic['vni']}, {nic['lease_ip'] or 'no lease'})"
    )
    return f"{nic['mac'] or 'MAC by libvirt'} on {nic['bridge'] or '-'}{network}"


def info_text(record: dict[str, Any]) -> str:
    """The pretty form of GET /vm/<vm>: one labelled line per field."""
    memory = record["memory"]
    return key_values(
        [
            ("name", record["name"]),
            ("uuid", record["uuid"]),
            ("state", record["state"]),
            ("node", record["node"]),
            ("last node", record["lastnode"] or None),
            ("observed", _observed(record)),
            ("failed reason", record["failed_reason"] or None),
            ("memory", None if memory is None else f"{memory} MiB"),
            ("vcpus", record["vcpus"]),
            ("volumes", ", ".join(record.get("volumes") or []) or None),
            ("nics", "; ".join(_nic_text(nic) for nic in record.get("nics") or []) or None),
            *_meta_pairs(record),
            ("tags", ", ".join(record["tags"]) or None),
            ("profile", record.get("profile")),
        ]
    )
