"""Usage:
  pvc connection add <name> --address ADDRESS [--port PORT] [--ssl]
                     [--api-key KEY | --key-file FILE] [--description TEXT]
  pvc connection remove <name>
  pvc connection list [--format FORMAT]
  pvc connection detail [<name>] [--format FORMAT]
  pvc connection -h | --help

Commands:
  add      Store a connection to a pvc API; an existing one of the same name is replaced.
  remove   Forget a stored connection.
  list     The known connections (API keys are never shown).
  detail   Whether each connection's API answers, and its version.

Connections live in ~/.config/pvc/pvc.json (or $PVC_CLIENT_DIR/pvc.json, mode 0600). Select
one with 'pvc -c NAME ...' or $PVC_CONNECTION; the default, "local", unless stored, is the API
of the node configuration (--config or $PVC_CONFIG). A stored entry pvc cannot use is named
in one line where it is used; the other connections work as before.

The address is a host name or an IP address (IPv6 with or without [brackets]), with an
optional :port, or a URL http://HOST[:PORT] or https://HOST[:PORT], with an optional path
/api/v1 (the API's only one). A URL's scheme sets --ssl; without a port, pvc's port 7370 is
used (or --port), also for a URL: http://api.example.org is http://api.example.org:7370/api/v1.

The API key (sent as X-Api-Key) is taken from the first of: --api-key (- reads standard
input), --key-file, $PVC_API_KEY, else a prompt without echo on a terminal (empty: no key).
A key written on the command line is seen by every user of the machine (ps): pvc warns.

Options:
  -a ADDRESS, --address ADDRESS  the API's address (see above)
  -p PORT, --port PORT           the API's port (default 7370, or the address's)
  -s, --ssl                      use https
  -k KEY, --api-key KEY          the API key; - reads it from standard input
  --key-file FILE                read the API key from FILE
  -d TEXT, --description TEXT    a note about the connection [default: ]
  -f FORMAT, --format FORMAT     output: pretty, json or json-pretty [default: pretty]
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pvc.cli import api_address, api_keys, connections
from pvc.cli.client import ApiClient
from pvc.cli.connections import Connection
from pvc.cli.format import check_format, key_values, render, table
from pvc.cli.parse import parse
from pvc.errors import PvcError, UsageError
from pvc.limits import one_line
from pvc.zk import schema

if TYPE_CHECKING:
    from pvc.__main__ import Globals

PROBE_TIMEOUT = 3.0
NO_CONNECTIONS = "no connections; add one with 'pvc connection add'"


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "connection")
    if arguments["add"]:
        return add(arguments)
    if arguments["remove"]:
        name = arguments["<name>"]
        connections.remove(name)
        print(f"connection '{name}' removed")
        return 0
    output_format = check_format(arguments["--format"])
    if arguments["list"]:
        return show_list(options, output_format)
    return detail(options, arguments["<name>"], output_format)


def add(arguments: dict[str, Any]) -> int:
    name = _name(arguments["<name>"])
    port = None if arguments["--port"] is None else _port(arguments["--port"])
    address = api_address.parse(
        arguments["--address"], port, arguments["--ssl"], connections.DEFAULT_PORT
    )
    connection = Connection(
        name=name,
        address=address.host,
        port=address.port,
        ssl=address.ssl,
        api_key=api_keys.from_arguments(arguments, name),
        description=one_line(arguments["--description"]),
    )
    replaced = connections.add(connection)
    print(f"connection '{name}' {'replaced' if replaced else 'added'}: {connection.url}")
    return 0


def show_list(options: Globals, output_format: str) -> int:
    store = connections.known(options.config)
    for name in store.broken:
        print(f"pvc: {one_line(store.broken_error(name).message)}", file=sys.stderr)
    rows = [
        {
            "name": conn.name,
            "address": conn.address,
            "port": conn.port,
            "scheme": conn.scheme,
            "api_key_set": conn.api_key is not None,
            "description": conn.description,
        }
        for conn in store.connections.values()
    ]
    print(render(rows, output_format, _list_table))
    return 0


def detail(options: Globals, name: str | None, output_format: str) -> int:
    broken: list[dict[str, Any]] = []
    if name is None:
        store = connections.known(options.config)
        chosen = list(store.connections.values())
        broken = [_unusable(store, name) for name in store.broken]
    else:
        chosen = [connections.resolve(name, options.config)]
    with ThreadPoolExecutor() as pool:
        details = list(pool.map(lambda conn: _probe(conn, options.insecure), chosen))
    details = sorted(details + broken, key=lambda found: found["name"])
    print(render(details, output_format, _detail_blocks))
    return 0


def mask(api_key: str | None) -> str | None:
    """An API key with all but its first four characters hidden (all of it, if short)."""
    if api_key is None:
        return None
    return f"{api_key[:4]}****" if len(api_key) >= 12 else "****"


def _name(text: str) -> str:
    if not schema.valid_name(text):
        raise UsageError(f"invalid connection name {text!r}: {schema.NAME_RULE}")
    return text


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise UsageError(f"invalid port '{text}': use a number from 1 to 65535")
    return int(text)


def _probe(conn: Connection, insecure: bool) -> dict[str, Any]:
    """The connection with whether its API answers GET /api/v1/, and its version if it does."""
    client = ApiClient(
        conn, insecure=insecure, connect_timeout=PROBE_TIMEOUT, read_timeout=PROBE_TIMEOUT
    )
    found: dict[str, Any] = {
        "name": conn.name,
        "url": conn.url,
        "api_key": mask(conn.api_key),
        "description": conn.description,
    }
    try:
        root = client.get("/")
    except PvcError as exc:
        return found | {"reachable": False, "version": None, "health": exc.message}
    version = root.get("version") if isinstance(root, dict) else None
    return found | {"reachable": True, "version": version, "health": "ok"}


def _unusable(store: connections.Store, name: str) -> dict[str, Any]:
    """A detail of a stored entry pvc cannot use: what it is and why."""
    fields, why = store.broken[name]
    description = fields.get("description") if isinstance(fields, dict) else None
    return {
        "name": name,
        "url": None,
        "api_key": None,
        "description": description if isinstance(description, str) else "",
        "reachable": False,
        "version": None,
        "health": store.broken_error(name).message,
    }


def _list_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return NO_CONNECTIONS
    columns = ("name", "address", "port", "scheme", "api_key_set", "description")
    headers = ("NAME", "ADDRESS", "PORT", "SCHEME", "API KEY", "DESCRIPTION")
    return table(headers, [[row[column] for column in columns] for row in rows])


def _detail_blocks(details: list[dict[str, Any]]) -> str:
    if not details:
        return NO_CONNECTIONS
    keys = ("url", "api_key", "description", "reachable", "version", "health")
    return "\n\n".join(
        f"{found['name']}\n" + key_values([(key.replace("_", " "), found[key]) for key in keys])
        for found in details
    )
