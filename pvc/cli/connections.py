"""The API connections this client knows, stored in `~/.config/pvc/pvc.json`.

The file (mode 0600, in a 0700 folder; `$PVC_CLIENT_DIR` moves the folder) maps names to
address, port, scheme and API key. The connection named "local", unless stored explicitly,
comes from the node configuration's `api` section, so `pvc` works on a node without setup.
"""

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from pvc import config as node_config
from pvc.errors import ConfigError, NotFound

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

    @property
    def scheme(self) -> str:
        return "https" if self.ssl else "http"

    @property
    def url(self) -> str:
        """The API's base URL, e.g. http://10.0.0.1:7370/api/v1."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}/api/v1"


def client_dir() -> Path:
    return Path(os.environ.get("PVC_CLIENT_DIR") or Path.home() / ".config" / "pvc")


def store_path() -> Path:
    return client_dir() / STORE_NAME


def load_stored() -> dict[str, Connection]:
    """The stored connections by name; none if the file does not exist yet."""
    path = store_path()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return {
            name: Connection(name=name, **fields)
            for name, fields in document["connections"].items()
        }
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"connections: cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ConfigError(f"connections: {path} is malformed; fix or remove it") from None


def save_stored(connections: dict[str, Connection]) -> None:
    """Writes the store atomically; the file is 0600 from its creation, its folder 0700."""
    folder = client_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    document = {
        "connections": {
            name: {key: value for key, value in asdict(conn).items() if key != "name"}
            for name, conn in sorted(connections.items())
        }
    }
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
    connections = load_stored()
    replaced = connection.name in connections
    connections[connection.name] = connection
    save_stored(connections)
    return replaced


def remove(name: str) -> None:
    connections = load_stored()
    if name not in connections:
        raise unknown(name)
    del connections[name]
    save_stored(connections)


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


def known(config_file: str | None) -> dict[str, Connection]:
    """The stored connections, plus "local" from the node configuration if that is readable."""
    connections = load_stored()
    if LOCAL not in connections:
        with contextlib.suppress(ConfigError):
            connections[LOCAL] = local_from_config(config_file)
    return dict(sorted(connections.items()))


def resolve(name: str | None, config_file: str | None) -> Connection:
    """The connection to use: `name`, else $PVC_CONNECTION, else "local"."""
    name = name or os.environ.get("PVC_CONNECTION") or LOCAL
    stored = load_stored()
    if name in stored:
        return stored[name]
    if name != LOCAL:
        raise unknown(name)
    try:
        return local_from_config(config_file)
    except ConfigError as exc:
        raise ConfigError(
            f"no 'local' connection: {exc.message}; or add one with 'pvc connection add'"
        ) from None
