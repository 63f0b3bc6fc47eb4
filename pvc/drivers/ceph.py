"""The Ceph cluster through librados (python3-rados): the connection and monitor commands.

One `Ceph` per process (`shared(config)`), opened lazily from `ceph.config_file`, the cephx
user `ceph.client` and its keyring, with client_mount_timeout and rados_mon_op_timeout set to
`ceph.timeout` and rados_osd_op_timeout to OSD_OP_FACTOR times it: without them a Ceph that
does not answer blocks a connect for 300 s and a command forever. A call that times out raises
CephUnavailable (503) and drops the connection, so the next call connects again.

Monitor commands are the JSON form of a `ceph` command line (`command("osd pool ls",
detail="detail")`); the monitors' non-zero answers raise CephError with their errno and their
own words. librbd work (pvc.drivers.ceph_images) goes through `ioctx(pool)`.
"""

import configparser
import errno as errno_codes
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from pvc.config import Config
from pvc.drivers import import_binding
from pvc.drivers.contracts import CephError, CephUnavailable

log = logging.getLogger("pvc.drivers.ceph")
# One OSD operation may take this many times `timeout`: OSDs answer slowly while they peer or
# recover (a snapshot removal trims many objects), which is no reason to fail; a Ceph that
# does not answer at all still fails within seconds, at the monitors.
OSD_OP_FACTOR = 6


def _first_json(text: str) -> Any:
    """The first JSON value of a monitor's answer (some answers append another: `blocklist
    ls` gives `[...][]`); None for an empty answer."""
    text = text.strip()
    if not text:
        return None
    return json.JSONDecoder().raw_decode(text)[0]


def client_key(keyring: str, client: str) -> str:
    """The cephx key of `client.<client>` in a keyring file (the secret libvirt gives QEMU)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(keyring, encoding="utf-8") as file:
            parser.read_file(file)
    except (OSError, UnicodeError, configparser.Error) as exc:
        raise CephUnavailable(f"cannot read the Ceph keyring {keyring}: {exc}") from None
    section = f"client.{client}"
    if not parser.has_option(section, "key"):
        raise CephUnavailable(f"the Ceph keyring {keyring} has no key for {section}")
    return parser.get(section, "key").strip()


def mon_host(config_file: str) -> str:
    """The monitors' addresses as a ceph.conf gives them (`mon_host` or `mon host` in
    [global]); "" if it names none. Read line by line: ceph.conf indents its options, which
    configparser would take for continuation lines."""
    section = ""
    try:
        with open(config_file, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeError) as exc:
        raise CephUnavailable(f"cannot read the Ceph configuration {config_file}: {exc}") from None
    for line in lines:
        text = line.split("#", 1)[0].split(";", 1)[0].strip()
        if text.startswith("[") and text.endswith("]"):
            section = text[1:-1].strip()
        elif section == "global" and "=" in text:
            option, value = (part.strip() for part in text.split("=", 1))
            if option.replace(" ", "_") == "mon_host":
                return value
    return ""


class Ceph:
    """A lazily opened, shared connection to one Ceph cluster (thread-safe)."""

    def __init__(self, config_file: str, client: str, keyring: str, timeout: float = 5.0):
        self.config_file = config_file
        self.client = client
        self.keyring = keyring
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._failed: tuple[CephUnavailable | None, float] = (None, 0.0)

    @classmethod
    def from_config(cls, config: Config) -> "Ceph":
        if not config.get("ceph.enabled"):
            raise CephUnavailable(
                "Ceph is not configured on this node (set ceph.enabled and its ceph.* keys)"
            )
        return cls(
            config.get("ceph.config_file"),
            config.get("ceph.client"),
            config.get("ceph.keyring"),
            config.get("ceph.timeout"),
        )

    # --- the connection ---------------------------------------------------------------------

    def cluster(self) -> Any:
        """The connected rados.Rados, connecting first if needed. A connect that failed is
        not tried again for `timeout` seconds (its error is raised at once), so requests that
        arrive while Ceph is down do not queue behind each other's connects."""
        with self._lock:
            if self._cluster is None:
                failed, when = self._failed
                if failed is not None and time.monotonic() - when < self.timeout:
                    raise failed
                try:
                    self._cluster = self._connect()
                except CephUnavailable as exc:
                    self._failed = (exc, time.monotonic())
                    raise
                self._failed = (None, 0.0)
            return self._cluster

    def _connect(self) -> Any:
        rados = import_binding("rados")
        seconds = str(max(1, round(self.timeout)))  # Ceph takes whole seconds here
        try:
            cluster = rados.Rados(
                conffile=self.config_file,
                name=f"client.{self.client}",
                conf={
                    "keyring": self.keyring,
                    "client_mount_timeout": seconds,
                    "rados_mon_op_timeout": seconds,
                    "rados_osd_op_timeout": str(max(1, round(self.timeout * OSD_OP_FACTOR))),
                    "log_to_stderr": "false",
                    "err_to_stderr": "false",
                },
            )
        except rados.Error as exc:
            raise CephUnavailable(
                f"cannot use the Ceph configuration {self.config_file}: {exc}"
            ) from None
        try:
            cluster.connect(timeout=self.timeout)
        except rados.Error as exc:
            cluster.shutdown()
            if isinstance(exc, rados.TimedOut):
                reason = f"Ceph did not answer within {self.timeout:g} s"
            elif isinstance(exc, rados.PermissionError | rados.PermissionDeniedError):
                reason = f"Ceph refused client.{self.client} (check ceph.client and ceph.keyring)"
            else:
                reason = "cannot connect to Ceph"
            raise CephUnavailable(f"{reason} ({self.config_file}): {exc}") from None
        return cluster

    def reset(self) -> None:
        """Drops the connection (after a timeout): the next call connects again."""
        with self._lock:
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            threading.Thread(target=cluster.shutdown, daemon=True).start()  # may block

    def close(self) -> None:
        with self._lock:
            cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.shutdown()

    def translate(self, exc: Exception, what: str) -> CephError:
        """A binding's exception as a CephError about `what`; a timeout or a lost connection
        also drops the connection."""
        rados = import_binding("rados")
        code = getattr(exc, "errno", None) or errno_codes.EIO
        if isinstance(exc, rados.TimedOut | rados.ConnectionShutdown) or code in (
            errno_codes.ETIMEDOUT,
            errno_codes.ESHUTDOWN,
        ):
            self.reset()
            return CephUnavailable(f"{what}: Ceph did not answer within {self.timeout:g} s")
        return CephError(f"{what}: {exc}", abs(code))

    # --- monitor commands -------------------------------------------------------------------

    def mon_command(self, command: dict[str, Any]) -> Any:
        """A monitor command (a `ceph` command line's JSON form): its parsed JSON answer (the
        text when it is not JSON); CephError with the monitors' words when it fails. It is
        bounded by rados_mon_op_timeout (the binding ignores a timeout of its own)."""
        return self._send("mon_command", command)

    def mgr_command(self, command: dict[str, Any]) -> Any:
        """A manager command (those the `ceph` tool sends to "mon-mgr": osd purge, ...), as
        `mon_command`; the monitors refuse these with a bare EINVAL."""
        return self._send("mgr_command", command)

    def _send(self, method: str, command: dict[str, Any]) -> Any:
        cluster = self.cluster()
        wait = self.timeout
        prefix = command.get("prefix", "?")
        try:
            code, out, status = getattr(cluster, method)(json.dumps(command), b"")
        except Exception as exc:  # the binding raises rados.Error subclasses
            raise self.translate(exc, f"ceph {prefix}") from None
        if code == -errno_codes.ETIMEDOUT:
            self.reset()
            raise CephUnavailable(f"ceph {prefix}: Ceph did not answer within {wait:g} s")
        if code != 0:
            raise CephError(f"ceph {prefix}: {status.strip() or errno_codes.errorcode.get(-code)}",
                            -code)  # fmt: skip
        text = out.decode(errors="replace")
        try:
            return _first_json(text)
        except ValueError:
            return text

    def command(self, prefix: str, **arguments: Any) -> Any:
        """`mon_command` with JSON output: command("osd tree") is `ceph osd tree -f json`."""
        return self.mon_command({"prefix": prefix, "format": "json", **arguments})

    # --- what others need -------------------------------------------------------------------

    def ioctx(self, pool: str) -> AbstractContextManager[Any]:
        return self._ioctx(pool)

    @contextmanager
    def _ioctx(self, pool: str) -> Iterator[Any]:
        """An I/O context on `pool` (for librbd), closed afterwards; CephError(ENOENT) for a
        pool that does not exist."""
        cluster = self.cluster()
        try:
            context = cluster.open_ioctx(pool)
        except Exception as exc:
            raise self.translate(exc, f"pool {pool}") from None
        try:
            yield context
        finally:
            context.close()

    def client_address(self) -> str:
        """This client's IP address as the cluster sees it (what a blocklist entry names)."""
        address = self.cluster().get_addrs()
        text = address if isinstance(address, str) else str(address)
        # e.g. "[v2:0.0.0.0:0/123,v1:10.0.0.1:0/123]" or "10.0.0.1:0/123"
        for part in text.strip("[]").split(","):
            host = part.split(":", 1)[-1].rsplit(":", 1)[0] if part.startswith("v") else part
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            if host and host not in ("0.0.0.0", "::", "-"):
                return host.strip("[]")
        raise CephError(f"cannot tell this client's address from {text!r}")

    def client_key(self) -> str:
        return client_key(self.keyring, self.client)


_shared: dict[tuple[str, str, str, float], Ceph] = {}
_shared_lock = threading.Lock()


def shared(config: Config) -> Ceph:
    """This process's connection for `config` (created on first use, connected lazily)."""
    made = Ceph.from_config(config)
    key = (made.config_file, made.client, made.keyring, made.timeout)
    with _shared_lock:
        return _shared.setdefault(key, made)
