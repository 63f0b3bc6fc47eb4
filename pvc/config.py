"""The node configuration: `/etc/pvc/pvc.conf` (YAML) read into a typed, validated `Config`.

One declarative table, `SPEC`, names every key with its type, default and a line of
documentation; validation, defaults and `pvc config sample` all come from it, so they cannot
drift apart. Every key has a default except `cluster.coordinators`. An unknown key or a wrong
type is reported as one `ConfigError` naming the key path.
"""

import os
import secrets
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pvc import config_networks, config_provisioner, limits
from pvc.config_values import (
    between,
    check_absolute_path,
    check_address,
    check_api_key,
    check_finite,
    check_host,
    check_port,
    check_uri,
    check_zookeeper_hosts,
)
from pvc.errors import ConfigError
from pvc.text_files import read_text_file, reason

DEFAULT_PATH = "/etc/pvc/pvc.conf"
REQUIRED = object()


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None  # returns a complaint, or None if fine


_TLS_FILES = ("cert_file", "key_file")
SECONDS_MAX = 86400.0  # a day: longer timers are mistakes (and overflow Zookeeper's int32 ms)
_seconds = between(0, SECONDS_MAX, above_low=True)


def _names(value: Any) -> str | None:
    if not value:
        return "must name at least one node"
    if not all(isinstance(item, str) and _name(item) is None for item in value):
        return "must be a list of node names"
    return "must not name a node twice" if len(set(value)) < len(value) else None


def _api_keys(value: Any) -> str | None:
    for item in value:
        if not (isinstance(item, dict) and isinstance(item.get("key"), str) and item["key"]):
            return "must be a list of {key: ..., description: ...} entries with a non-empty key"
        if set(item) - {"key", "description"}:
            return "entries take only 'key' and 'description'"
        complaint = check_api_key(item["key"])
        if complaint:
            return f"entries' keys {complaint}"
    return None


def _name(value: Any) -> str | None:
    from pvc.zk import schema

    return None if schema.valid_name(value) else f"is not a valid name: {schema.NAME_RULE}"


# How placement may choose a VM's node (pvc.ops.placement scores them).
VM_SELECTORS = ("mem", "memprov", "load", "vcpus", "vms")


def _selector(value: Any) -> str | None:
    return None if value in VM_SELECTORS else f"must be one of {', '.join(VM_SELECTORS)}"


def _log_level(value: Any) -> str | None:
    return (
        None
        if value in ("debug", "info", "warning", "error")
        else "must be debug|info|warning|error"
    )


def _fence(value: Any) -> str | None:
    return None if value in ("migrate", "none") else "must be migrate or none"


def _short_hostname() -> str:
    return socket.gethostname().split(".")[0]


SPEC: dict[str, Any] = {
    "node": {
        "name": Field(str, None, "This node's name; defaults to the short hostname.", _name),
    },
    "cluster": {
        "name": Field(str, "pvc", "A name for the cluster, shown in status output.", _name),
        "coordinators": Field(
            list, REQUIRED, "Names of the coordinator nodes (3 or 5 in production).", _names
        ),
    },
    "zookeeper": {
        "hosts": Field(
            (str, type(None)),
            None,
            "Zookeeper connect string host:port,...[/chroot]; default: coordinators on 2181.",
            check_zookeeper_hosts,
        ),
        "connect_timeout": Field(
            (int, float),
            5.0,
            "Seconds to wait for a Zookeeper connection before failing.",
            _seconds,
        ),
        "session_timeout": Field(
            (int, float),
            4.0,
            "Zookeeper session timeout in seconds: a crashed primary is replaced this much later.",
            _seconds,
        ),
        "secret": Field(
            (str, type(None)),
            None,
            "Required by the daemon and the API, the same on every node: only its holders can "
            "read or write the cluster's Zookeeper tree.",
        ),
    },
    "api": {
        "serve_on_primary": Field(
            bool,
            True,
            "Each coordinator's daemon runs the API (a child process, warm on every coordinator).",
        ),
        "listen_address": Field(
            str,
            "0.0.0.0",
            "API address: the floating one (only the primary answers) or 0.0.0.0 (every "
            "coordinator answers; fine, the API is stateless around Zookeeper).",
            check_address,
        ),
        "listen_port": Field(int, 7370, "Port the API listens on.", check_port),
        "authentication": {
            "enabled": Field(bool, True, "Require an X-Api-Key header on every request."),
            "keys": Field(list, [], "Accepted API keys: a list of {key, description}.", _api_keys),
        },
        "tls": {
            "enabled": Field(bool, False, "Serve the API over TLS."),
            "cert_file": Field(
                (str, type(None)), None, "PEM certificate (chain) file.", check_absolute_path
            ),
            "key_file": Field(
                (str, type(None)), None, "PEM private key file (mode 0600).", check_absolute_path
            ),
        },
    },
    "vm": {
        "default_selector": Field(
            str, "mem", "How to place VMs: mem, memprov, load, vcpus or vms.", _selector
        ),
        "memory_overcommit_ratio": Field(
            (int, float),
            1.0,
            "Refuse to start VMs past this multiple of a node's memory.",
            between(0, 100, above_low=True),
        ),
        "console_log_lines": Field(
            int, 1000, "Lines of each VM's serial console kept in Zookeeper.", between(1, 100000)
        ),
        "autoflush": Field(
            bool, False, "Move this node's VMs away when its daemon stops (and wait for it)."
        ),
        "migration_max_downtime": Field(
            int,
            300,
            "Longest pause of a live migration, in milliseconds.",
            between(1, SECONDS_MAX * 1000),
        ),
    },
    "jobs": {
        "keep_finished": Field(
            int, 100, "Ended tasks kept in Zookeeper (older ones are removed).", between(1, 10000)
        ),
    },
    "libvirt": {
        "enabled": Field(bool, True, "Run VMs on this node (false: a node without libvirt)."),
        "uri": Field(
            str, "qemu:///system", "How this node's daemon reaches its libvirt.", check_uri
        ),
        "migration_uri": Field(
            (str, type(None)),
            None,
            "How other nodes reach this node's libvirt; default qemu+tcp://<node name>/system.",
            check_uri,
        ),
    },
    "timers": {
        "keepalive_interval": Field(
            (int, float), 5.0, "Seconds between node keepalives.", _seconds
        ),
        "fence_intervals": Field(
            int, 6, "Missed keepalives before a node is considered dead.", between(1, 1000)
        ),
        "relinquish_timeout": Field(
            (int, float), 10.0, "Seconds a stopping primary waits for a successor.", _seconds
        ),
        "suicide_intervals": Field(
            int, 0, "Missed keepalives before a node fences itself (0: never).", between(0, 1000)
        ),
        "vm_shutdown_timeout": Field(
            (int, float), 180.0, "Seconds a graceful VM shutdown may take.", _seconds
        ),
    },
    "fencing": {
        "successful_fence": Field(
            str, "migrate", "After a fence: migrate (restart the VMs elsewhere) or none.", _fence
        ),
        "failed_fence": Field(
            str,
            "none",
            "When IPMI fails: migrate (only with self-fencing, after its deadline) or none.",
            _fence,
        ),
    },
    "ipmi": {
        "host": Field(
            (str, type(None)), None, "This node's BMC, for fencing it (null: none).", check_host
        ),
        "port": Field(int, 623, "The BMC's IPMI port (UDP).", check_port),
        "user": Field((str, type(None)), None, "BMC user allowed to control power."),
        "password": Field((str, type(None)), None, "BMC password (kept in a private key)."),
    },
    "ceph": {
        "enabled": Field(
            bool,
            False,
            "This node reaches a Ceph cluster: storage commands, VM disks on RBD, its OSDs.",
        ),
        "config_file": Field(
            str, "/etc/ceph/ceph.conf", "The Ceph cluster's ceph.conf.", check_absolute_path
        ),
        "client": Field(str, "admin", "The cephx user pvc connects as (without 'client.').", _name),
        "keyring": Field(
            str,
            "/etc/ceph/ceph.client.admin.keyring",
            "That user's keyring (mode 0600; its key also becomes each libvirtd's RBD secret).",
            check_absolute_path,
        ),
        "bootstrap_keyring": Field(
            str,
            "/var/lib/ceph/bootstrap-osd/ceph.keyring",
            "The client.bootstrap-osd keyring this node's OSDs are created with.",
            check_absolute_path,
        ),
        "timeout": Field(
            (int, float),
            5.0,
            "Seconds a connection or monitor command may take before it fails (a Ceph that "
            "does not answer); one OSD operation may take 6 times as long.",
            between(0, 300, above_low=True),
        ),
    },
    "storage": {
        "max_fill_ratio": Field(
            (int, float),
            0.8,
            "Refuse a volume add, clone or resize that would fill a pool past this ratio.",
            between(0, 1, above_low=True),
        ),
    },
    "networks": config_networks.spec(Field),
    "provisioner": config_provisioner.spec(Field),
    "logging": {
        "level": Field(str, "info", "Log level: debug, info, warning or error.", _log_level),
        "file": Field(
            (str, type(None)),
            None,
            "Log file; logs go to standard error when empty.",
            check_absolute_path,
        ),
        "log_keepalives": Field(bool, True, "Log one line per keepalive."),
    },
}


class Config:
    """A validated configuration: nested sections reachable by attribute or by dotted `get`."""

    def __init__(self, values: dict[str, Any], path: str | None = None):
        self._values = values
        self.path = path

    def get(self, dotted: str) -> Any:
        value: Any = self._values
        for part in dotted.split("."):
            value = value[part]
        return value

    def as_dict(self) -> dict[str, Any]:
        return self._values

    @property
    def node_name(self) -> str:
        return self.get("node.name")

    @property
    def coordinators(self) -> list[str]:
        return self.get("cluster.coordinators")

    @property
    def zookeeper_hosts(self) -> str:
        return self.get("zookeeper.hosts")


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    names |= {list: "a list", type(None): "empty"}
    return " or ".join(names[k] for k in kinds if not (k is int and float in kinds))


def _apply(spec: dict[str, Any], given: Any, prefix: str) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ConfigError(f"config: '{prefix.rstrip('.') or '(top)'}' must be a mapping of keys")
    unknown = sorted(str(key) for key in set(given) - set(spec))
    if unknown:
        raise ConfigError(f"config: unknown key '{prefix}{unknown[0]}'")
    out: dict[str, Any] = {}
    for key, field in spec.items():
        path = f"{prefix}{key}"
        if isinstance(field, dict):
            out[key] = _apply(field, given.get(key), path + ".")
            continue
        if key not in given:
            if field.default is REQUIRED:
                raise ConfigError(f"config: '{path}' must be set")
            out[key] = list(field.default) if isinstance(field.default, list) else field.default
            continue
        value = given[key]
        kinds = field.kind if isinstance(field.kind, tuple) else (field.kind,)
        is_bool = isinstance(value, bool)
        if not isinstance(value, kinds) or (is_bool and bool not in kinds):
            raise ConfigError(f"config: '{path}' must be {_type_name(field.kind)}, not {value!r}")
        complaint = check_finite(value)
        if not complaint and field.check and value is not None:
            complaint = field.check(value)
        if complaint:
            raise ConfigError(f"config: '{path}' {complaint}")
        out[key] = value
    return out


def from_dict(given: Any, path: str | None = None) -> Config:
    """Validates a parsed YAML document and fills in defaults and derived values."""
    moved = config_networks.moved_key(given)
    if moved:
        raise ConfigError(moved)
    values = _apply(SPEC, given, "")
    if values["node"]["name"] is None:
        values["node"]["name"] = _short_hostname()
        complaint = _name(values["node"]["name"])
        if complaint:
            raise ConfigError(f"config: 'node.name' is not set and the host name {complaint}")
    if values["zookeeper"]["hosts"] is None:
        values["zookeeper"]["hosts"] = ",".join(
            f"{name}:2181" for name in values["cluster"]["coordinators"]
        )
    _check_combinations(values)
    return Config(values, path)


def require_api_keys(authentication: dict[str, Any]) -> None:
    """An API that requires keys has some (`pvc api serve`, and every coordinator's daemon,
    which runs it)."""
    if authentication["enabled"] and not authentication["keys"]:
        raise ConfigError(
            "config: 'api.authentication.keys' is empty; add a key or set enabled: false"
        )


def _check_combinations(values: dict[str, Any]) -> None:
    """Keys that only make sense together."""
    tls = values["api"]["tls"]
    if tls["enabled"] and not (tls["cert_file"] and tls["key_file"]):
        raise ConfigError("config: 'api.tls' is enabled but cert_file or key_file is not set")
    serves_api = values["node"]["name"] in values["cluster"]["coordinators"]
    if serves_api and values["api"]["serve_on_primary"]:  # a hypervisor never serves it
        require_api_keys(values["api"]["authentication"])
    for name in config_networks.CLUSTER_NETWORKS:
        network = values["networks"][name]
        if network["device"] is None and any(network[key] for key in ("address", "floating_ip")):
            raise ConfigError(
                f"config: 'networks.{name}' has an address but no 'device' to put it on"
            )
    ipmi = values["ipmi"]
    if ipmi["host"] is not None and (ipmi["user"] is None or ipmi["password"] is None):
        raise ConfigError("config: 'ipmi.host' is set but 'ipmi.user' or 'ipmi.password' is not")


def check_files(config: Config) -> None:
    """The files the configuration names are where it says (`pvc config check`; the daemons
    find out when they open them): TLS certificate and key, the log file's folder."""
    wanted: list[tuple[str, str, bool]] = []  # (key, path, whether it must be a folder)
    if config.get("api.tls.enabled"):
        wanted += [(f"api.tls.{key}", config.get(f"api.tls.{key}"), False) for key in _TLS_FILES]
    log_file = config.get("logging.file")
    if log_file:
        wanted.append(("logging.file", os.path.dirname(log_file) or "/", True))
    for key, path, folder in wanted:
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(f"config: '{key}': {path} does not exist") from None
        except OSError:
            continue  # not ours to see (permissions): the daemon will tell
        if folder != stat.S_ISDIR(mode) or not (folder or stat.S_ISREG(mode)):
            raise ConfigError(
                f"config: '{key}': {path} is not {'a folder' if folder else 'a file'}"
            )


def config_path(explicit: str | None = None) -> str:
    """The config file to read: --config, then $PVC_CONFIG, then /etc/pvc/pvc.conf."""
    return explicit or os.environ.get("PVC_CONFIG") or DEFAULT_PATH


def load(explicit: str | None = None) -> Config:
    """Reads and validates the configuration file; every failure is one ConfigError line."""
    import yaml

    path = config_path(explicit)
    try:
        text = read_text_file(path, limits.CONFIG_FILE_MAX)
    except FileNotFoundError:
        raise ConfigError(f"config: {path} does not exist (set --config or PVC_CONFIG)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config: cannot read {path}: {reason(exc)}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ConfigError(f"config: {path}{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"config: {path}: nested too deeply") from None
    return from_dict(document, path)


def sample() -> str:
    """A fully commented sample configuration, generated from SPEC, with a new API key."""
    lines = [
        "# pvc configuration (/etc/pvc/pvc.conf). Every key but cluster.coordinators has the",
        "# default shown; remove the leading '# ' of a key to change it.",
    ]

    def render(spec: dict[str, Any], depth: int) -> None:
        pad = "  " * depth
        for key, field in spec.items():
            if isinstance(field, dict):
                lines.append(f"{pad}{key}:")
                render(field, depth + 1)
                continue
            lines.append(f"{pad}# {field.doc}")
            if field.default is REQUIRED:
                lines.append(f"{pad}{key}: [node1, node2, node3]")
            elif field.check is _api_keys:
                # a fresh random key, so the sample is usable as it is and never shared
                lines.append(f"{pad}{key}:")
                lines.append(f"{pad}  - description: admin")
                lines.append(f"{pad}    key: {secrets.token_urlsafe(32)}")
            elif key == "secret":  # the same in every node's file: copy it over with the file
                lines.append(f"{pad}{key}: {secrets.token_urlsafe(32)}")
            else:
                lines.append(f"{pad}# {key}: {_yaml_scalar(field.default)}")

    render(SPEC, 0)
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[]"
    return str(value)
