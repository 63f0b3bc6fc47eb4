"""Usage:
  pvc provisioner (userdata | script) add <name> <file>
  pvc provisioner (userdata | script) modify <name> <file>
  pvc provisioner (userdata | script) remove <name> [--yes]
  pvc provisioner (userdata | script) show <name>
  pvc provisioner (userdata | script) info <name> [--format FORMAT]
  pvc provisioner (userdata | script) list [<limit>] [--format FORMAT]
  pvc provisioner profile add <name> [--type TYPE] [--system-template T] [--network-template T]
                  [--storage-template T] [--userdata U] [--script S] [--ova O] [--arg KV]...
  pvc provisioner profile modify <name> [--type TYPE] [--system-template T]
                  [--network-template T] [--storage-template T] [--userdata U] [--script S]
                  [--ova O] [--arg KV]... [--no-args]
  pvc provisioner profile remove <name> [--yes]
  pvc provisioner profile info <name> [--format FORMAT]
  pvc provisioner profile list [<limit>] [--format FORMAT]
  pvc provisioner (userdata | script | profile) -h | --help

Commands:
  userdata  cloud-init userdata: '#cloud-config' YAML (a mapping), a MIME multipart document
            or a script ('#!'). Placeholders {{ vm_name }}, {{ vm_uuid }}, {{ hostname }} and
            {{ profile }} are filled in for each VM.
  script    Install scripts: Python defining class VMBuilderScript(VMBuilder).
  profile   What a VM is built from: templates, userdata, script and its arguments.

  add       Add one, from <file> ('-': standard input); it is checked first.
  modify    userdata, script: replace its text; profile: change the fields given (an empty
            name, as --userdata '', clears that field).
  remove    Remove one (asks first unless --yes); userdata or a script a profile uses is
            refused with the profile's name. VMs built from a profile keep its name.
  show      Print the text.
  info      One record; list: all of them (whose name contains <limit>).

Options:
  --type TYPE                 provisioner (needs a system template) or ova (needs an OVA)
  --system-template T         the system template (vCPUs, memory, ...)
  --network-template T        the network template (NICs)
  --storage-template T        the storage template (disks)
  --userdata U                the cloud-init userdata
  --script S                  the install script
  --ova O                     the OVA (profiles of type ova)
  --arg KV                    a script argument key=value (repeat for more); modify: the
                              arguments given replace all of them
  --no-args                   modify: remove all script arguments
  -y, --yes                   do not ask for confirmation
  -f FORMAT, --format FORMAT  output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from pvc.cli import client
from pvc.cli.cluster import confirm_or_stop
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.input_files import read_input
from pvc.cli.parse import parse
from pvc.errors import UsageError

if TYPE_CHECKING:
    from pvc.__main__ import Globals

# Bytes of a file: pvc.ops.provisioner_records.TEXT_MAX (a text's bytes as stored are never
# fewer than its UTF-8 bytes); not imported, so the CLI does not load the ops modules.
FILE_MAX = 256 * 1024
TEXT_HEADERS = ("NAME", "FORMAT", "SIZE", "PROFILES")
PROFILE_HEADERS = ("NAME", "TYPE", "SYSTEM", "NETWORK", "STORAGE", "USERDATA", "SCRIPT", "OVA",
                   "ARGUMENTS")  # fmt: skip
# option -> the API's field
PROFILE_OPTIONS = {
    "--system-template": "system_template",
    "--network-template": "network_template",
    "--storage-template": "storage_template",
    "--userdata": "userdata",
    "--script": "script",
    "--ova": "ova",
}


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "provisioner", f"provisioner {args[0]}")
    kind = args[0]
    if arguments["--no-args"] and arguments["--arg"]:
        raise UsageError("give --arg or --no-args, not both")
    name = arguments["<name>"]
    # a bad file is refused before any connection is looked for
    text = read_input(arguments["<file>"], FILE_MAX, f"the {kind}") if arguments["<file>"] else None
    api = client.for_options(options)
    path = f"/provisioner/{kind}/{urllib.parse.quote(name, safe='')}" if name else ""
    answer = None
    if arguments["add"] and kind == "profile":
        answer = api.post("/provisioner/profile", {"name": name, **profile_fields(arguments)})
    elif arguments["add"]:
        answer = api.post(f"/provisioner/{kind}", {"name": name, "data": text})
    elif arguments["modify"]:
        fields = profile_fields(arguments) if kind == "profile" else {"data": text}
        answer = api.request("PUT", path, fields)
    elif arguments["remove"]:
        confirm_or_stop(f"Remove {kind} '{name}'? (y/N) ", arguments["--yes"])
        answer = api.request("DELETE", path)
    if answer is not None:
        print(answer["message"])
        return 0
    if arguments["show"]:
        print(api.get(path)["text"], end="")
        return 0
    output_format = check_format(arguments["--format"])
    pretty = profile_text if kind == "profile" else text_info
    if arguments["list"]:
        pretty = profiles_text if kind == "profile" else texts_text
        found = api.get(f"/provisioner/{kind}", {"limit": arguments["<limit>"]})
        print(render(found, output_format, pretty))
        return 0
    print(render(api.get(path), output_format, pretty))
    return 0


def profile_fields(arguments: dict[str, Any]) -> dict[str, Any]:
    """The API's fields for the profile options given."""
    fields = {field: arguments[option] for option, field in PROFILE_OPTIONS.items()}
    fields["profile_type"] = arguments["--type"]
    if arguments["--arg"] or arguments["--no-args"]:
        if any("\n" in pair or "\r" in pair for pair in arguments["--arg"]):
            raise UsageError("a script argument is one line: key=value")
        fields["arguments"] = "\n".join(arguments["--arg"])
    return {field: value for field, value in fields.items() if value is not None}


def _arguments(profile: dict[str, Any]) -> str | None:
    pairs = [f"{key}={value}" for key, value in sorted(profile["arguments"].items())]
    return " ".join(pairs) or None


def texts_text(records: list[dict[str, Any]]) -> str:
    rows = [[r["name"], r["format"], r["bytes"], ",".join(r["profiles"])] for r in records]
    return table(TEXT_HEADERS, rows) if rows else "none found"


def text_info(record: dict[str, Any]) -> str:
    return key_values(
        [
            ("name", record["name"]),
            ("format", record["format"]),
            ("size", f"{record['bytes']} bytes"),
            ("used by", ", ".join(record["profiles"]) or None),
        ]
    )


def profiles_text(profiles: list[dict[str, Any]]) -> str:
    rows = [
        [p["name"], p["type"], *(p[field] for field in PROFILE_OPTIONS.values()), _arguments(p)]
        for p in profiles
    ]
    return table(PROFILE_HEADERS, rows) if rows else "no profiles"


def profile_text(profile: dict[str, Any]) -> str:
    pairs = [("name", profile["name"]), ("type", profile["type"])]
    pairs += [(option[2:], profile[field]) for option, field in PROFILE_OPTIONS.items()]
    return key_values([*pairs, ("arguments", _arguments(profile))])
