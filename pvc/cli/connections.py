"""The API connections this client knows, stored in `~/.config/pvc/pvc.json`.

The file (mode 0600, in a 0700 folder; `$PVC_CLIENT_DIR` moves the folder) maps names to
address, port, scheme and API key. The connection named "local", unless stored explicitly,
comes from the node configuration's `api` section, so `pvc` works on a node without setup.

A `Connection` is valid by construction (a host, a port, a key that can be sent). An entry of
the file that is not (edited by hand, written by an older pvc) is kept as it is and reported
by name where it is used; it never stops commands about the other connections.
"""

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pvc import config as node_config
from pvc import limits
from pvc.config_values import check_api_key, check_port, valid_host
from pvc.errors import ConfigError, NotFound
from pvc.text_files import read_text_file, reason
from pvc.zk import schema

DEFAULT_PORT = 7370
LOCAL = "local"
STORE_NAME = "pvc.json"
# An API listening on every address is reached on the loopback one.
WILDCARD_ADDRESSES = {"0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True)
class Connection:
    name: str
    address: str
    port: int = DEFAULT_PORT
    ssl: bool = False
    api_key: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        complaint = _complaint(self)
        if complaint:
            raise ValueError(complaint)

    @property
    def scheme(self) -> str:
        return "https" if self.ssl else "http"

    @property
    def url(self) -> str:
        """The API's base URL, e.g. http://10.0.0.1:7370/api/v1."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}/api/v1"


def _complaint(conn: Connection) -> str | None:
    """What makes `conn` unusable, or None."""
    if not schema.valid_name(conn.name):
        return f"its name is not valid ({schema.NAME_RULE})"
    if not isinstance(conn.address, str) or not valid_host(conn.address):
        return f"its address {conn.address!r} is not a host name or an IP address"
    if type(conn.port) is not int or check_port(conn.port):
        return f"its port {conn.port!r} is not a port number (1-65535)"
    if type(conn.ssl) is not bool:
        return "its ssl is not true or false"
    if conn.api_key is not None:
        if not isinstance(conn.api_key, str):
            return "its API key is not a string"
        key_complaint = check_api_key(conn.api_key)
        if key_complaint:
            return f"its API key {key_complaint}"
    if not isinstance(conn.description, str):
        return "its description is not a string"
    return None


@dataclass
class Store:
    """The file's connections, and the entries that are not usable ones: name -> (the
    entry as stored, why it cannot be used)."""

    connections: dict[str, Connection] = field(default_factory=dict)
    broken: dict[str, tuple[Any, str]] = field(default_factory=dict)

    def broken_error(self, name: str) -> ConfigError:
        return ConfigError(
            f"connection '{name}' in {store_path()} cannot be used: {self.broken[name][1]};"
            f" add it again, or 'pvc connection remove {name}'"
        )


def client_dir() -> Path:
    return Path(os.environ.get("PVC_CLIENT_DIR") or Path.home() / ".config" / "pvc")


def store_path() -> Path:
    return client_dir() / STORE_NAME


def load_store() -> Store:
    """The stored connections; an empty store if the file does not exist yet."""
    path = store_path()
    try:
        document = json.loads(read_text_file(str(path), limits.CONFIG_FILE_MAX))
        entries = document["connections"]
        if not isinstance(entries, dict):
            raise TypeError(entries)
    except FileNotFoundError:
        return Store()
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
        why = reason(exc) if isinstance(exc, OSError | ValueError) else "not a pvc.json"
        raise ConfigError(f"connections: cannot read {path} ({why}); fix or remove it") from None
    _warn_if_readable_by_others(path)
    store = Store()
    for name, fields in entries.items():
        try:
            store.connections[name] = Connection(name=name, **fields)
        except ValueError as exc:
            store.broken[name] = (fields, str(exc))
        except TypeError:
            store.broken[name] = (fields, "it is not {address, port, ssl, api_key, description}")
    return store


def _warn_if_readable_by_others(path: Path) -> None:
    """The store holds API keys: one line on stderr if others may read it (pvc writes it
    0600; a copy or an editor may not have)."""
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            print(
                f"pvc: warning: {path} holds API keys and is mode {mode:04o}: chmod 600 {path}",
                file=sys.stderr,
            )


def save_store(store: Store) -> None:
    """Writes the store atomically; the file is 0600 from its creation, its folder 0700.
    Broken entries are written back as they were."""
    folder = client_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    entries = {name: fields for name, (fields, _) in store.broken.items()}
    for name, conn in store.connections.items():
        entries[name] = {key: value for key, value in asdict(conn).items() if key != "name"}
    document = {"connections": dict(sorted(entries.items()))}
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{STORE_NAME}.")  # mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
        os.replace(temporary, folder / STORE_NAME)
    except BaseException:
        os.unlink(temporary)
        raise


def unknown(name: str) -> NotFound:
    return NotFound(f"no connection named '{name}'; see 'pvc connection list'")


def add(connection: Connection) -> bool:
    """Stores `connection`, replacing one of the same name; returns True if it replaced one."""
    store = load_store()
    replaced = connection.name in store.connections or connection.name in store.broken
    store.broken.pop(connection.name, None)
    store.connections[connection.name] = connection
    save_store(store)
    return replaced


def remove(name: str) -> None:
    """Forgets a stored connection, a broken entry too."""
    store = load_store()
    if name not in store.connections and name not in store.broken:
        raise unknown(name)
    store.connections.pop(name, None)
    store.broken.pop(name, None)
    save_store(store)


def local_from_config(config_file: str | None) -> Connection:
    """The "local" connection: the API of the node configuration's `api` section."""
    config = node_config.load(config_file)
    api = config.get("api")
    address = api["listen_address"]
    auth = api["authentication"]
    return Connection(
        name=LOCAL,
        address=WILDCARD_ADDRESSES.get(address, address),
        port=api["listen_port"],
        ssl=api["tls"]["enabled"],
        api_key=auth["keys"][0]["key"] if auth["enabled"] else None,
        description=f"from {config.path}",
    )


def known(config_file: str | None) -> Store:
    """The stored connections, plus "local" from the node configuration if that is readable
    (and no stored entry, usable or not, is named "local"); sorted by name."""
    store = load_store()
    if LOCAL not in store.connections and LOCAL not in store.broken:
        with contextlib.suppress(ConfigError):
            store.connections[LOCAL] = local_from_config(config_file)
    store.connections = dict(sorted(store.connections.items()))
    return store


def resolve(name: str | None, config_file: str | None) -> Connection:
    """The connection to use: `name`, else $PVC_CONNECTION, else "local"."""
    name = name or os.environ.get("PVC_CONNECTION") or LOCAL
    store = load_store()
    if name in store.connections:
        return store.connections[name]
    if name in store.broken:
        raise store.broken_error(name)
    if name != LOCAL:
        raise unknown(name)
    try:
        return local_from_config(config_file)
    except ConfigError as exc:
        raise ConfigError(
            f"no 'local' connection: {exc.message}; or add one with 'pvc connection add'"
        ) from None
