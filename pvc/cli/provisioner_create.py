"""Usage:
  pvc provisioner create <name> <profile> [--define-only] [--no-start] [--arg K=V]...
                         [--runner NODE] [--wait] [--format FORMAT]
  pvc provisioner create -h | --help

Build VM <name> from <profile>: a task a node's daemon runs (see 'pvc cluster task'), in
steps: verify, build the XML, define the VM (in state provision), create its volumes, run
the install script, start it. A step that fails undoes what the task made and names itself.

Options:
  --define-only               define the VM and make its volumes only (no install script;
                              it stays stopped)
  --no-start                  leave the VM stopped once it is built
  --arg K=V                   an install script argument (overrides the profile's; repeat)
  --runner NODE               the node whose daemon builds it (one with Ceph; default: the
                              primary)
  -w, --wait                  follow the task to its end (a progress bar on a terminal, a
                              line per step otherwise; exit 1 if it fails or is cancelled)
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pvc.cli import client, tasks
from pvc.cli.format import check_format
from pvc.cli.parse import parse
from pvc.errors import UsageError

if TYPE_CHECKING:
    from pvc.__main__ import Globals


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "provisioner", "provisioner create")
    output_format = check_format(arguments["--format"])
    for item in arguments["--arg"]:
        if "=" not in item or "\n" in item:
            raise UsageError(f"--arg {item!r} is not K=V on one line")
    params: dict[str, Any] = {
        "name": arguments["<name>"],
        "profile": arguments["<profile>"],
        "define_only": arguments["--define-only"],
        "start": not arguments["--no-start"],
    }
    if arguments["--arg"]:
        params["arg"] = "\n".join(arguments["--arg"])
    if arguments["--runner"]:
        params["runner"] = arguments["--runner"]
    api = client.for_options(options)
    answer = api.post("/provisioner/create", params)
    return tasks.show_or_follow(api, answer, arguments["--wait"], output_format)
