"""What pvc relies on from each outside system: one Protocol per driver, and the drivers' errors.

The node daemon and the ops depend on these types, not on an implementation; a Protocol is
structural (an implementation need not inherit from it), and tests/unit/test_driver_contracts.py
checks that every implementation has each member with the same parameters.

| contract          | implementation                                   |
|-------------------|--------------------------------------------------|
| HypervisorDriver  | pvc.drivers.libvirt.Hypervisor                   |
| AddressDriver     | the module pvc.drivers.netlink                   |
| PowerDriver       | pvc.drivers.ipmi.Bmc (fence procedure: pvc.drivers.power_fence) |
| CephDriver        | pvc.drivers.ceph.Ceph                            |
| ImagesDriver      | pvc.drivers.ceph_images.Images                   |
| OsdDeviceDriver   | pvc.drivers.ceph_volume.CephVolume               |
| OsdProcessDriver  | pvc.drivers.osd_process (systemd or supervised)  |
| FirewallDriver    | pvc/drivers/nft.py, to come                      |
| DhcpDnsDriver     | pvc/drivers/dnsmasq.py, to come                  |

Every driver:
- is the only module that touches its system, and imports a C binding (libvirt, rados, rbd)
  through `pvc.drivers.import_binding`, only once it is used;
- bounds every call in time (a timeout of its own or one it is given; libvirt's through the
  keepalive of a connection with events), so a hung system fails a step instead of holding a
  worker;
- raises its own error (a DriverError: a message naming the object, in the system's words, on
  one line of at most limits.REASON_MAX characters, since it is shown and stored as a reason),
  never the binding's exceptions, and never a secret in a message;
- makes adding what is there and removing what is not succeed;
- is tested against the real system, chosen by configuration (a URI, a namespace, a BMC's
  address, a ceph.conf), never by monkeypatching.
"""

import errno
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pvc.errors import PvcError
from pvc.limits import one_line


class DriverError(PvcError):
    """An outside system refused or failed a request; its message is one line (an outside
    system's text may be megabytes over many lines: libvirt's are)."""

    def __init__(self, message: str):
        super().__init__(one_line(message))


class HypervisorError(DriverError):
    """The hypervisor refused or failed an operation."""


class PowerError(DriverError):
    """A power request failed; `reason` says why in a few words."""

    http_status = 502  # the BMC, a service behind us, failed

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = one_line(reason)


class CephError(DriverError):
    """Ceph refused or failed a request; `errno` is Ceph's (positive) error number."""

    http_status = 502

    def __init__(self, message: str, errno: int = errno.EIO):
        super().__init__(message)
        self.errno = errno


class CephUnavailable(CephError):
    """Ceph is not configured on this node, or did not answer in time."""

    http_status = 503

    def __init__(self, message: str):
        super().__init__(message, errno.ETIMEDOUT)


EventCallback = Callable[[str], None]  # a domain's UUID, from the hypervisor's event thread


@runtime_checkable
class HypervisorDriver(Protocol):
    """The hypervisor of this node. Opening it (the implementation's constructor) takes the URI
    and, optionally, a callback for lifecycle events, called with the domain's UUID from the
    driver's own thread (it must not block); without one, no event loop is started (the
    watchdog). Domains are transient: started from the XML in Zookeeper, never defined here.
    Each carries the mark of the cluster that started it (`owner`, the cluster's identity), so
    a daemon tells its cluster's domains from any other. States: running, paused, shutdown,
    shutoff, crashed, other. Failures raise HypervisorError.
    """

    uri: str

    def domains(self) -> dict[str, str]:
        """UUID -> state of every domain here; one that is not listed does not exist here."""
        ...

    def state(self, uuid: str) -> str | None:
        """The domain's state, None if it is not here."""
        ...

    def start(self, xml: str, owner: str) -> None:
        """Starts a transient domain from `xml`, marked as cluster `owner`'s."""
        ...

    def owner(self, uuid: str) -> str | None:
        """The identity of the cluster whose mark the domain carries; None if it has none
        (or is not here)."""
        ...

    def mark(self, uuid: str, owner: str) -> None:
        """Marks a running domain as cluster `owner`'s (one started before domains were)."""
        ...

    def shutdown(self, uuid: str) -> None:
        """Asks the guest to shut down (ACPI) and returns at once."""
        ...

    def destroy(self, uuid: str) -> None:
        """Hard off; succeeds for a domain that is not here."""
        ...

    def remove(self, uuid: str) -> None:
        """Hard off and, if it is defined, undefined: gone from here; succeeds for a domain
        that is not here."""
        ...

    def resume(self, uuid: str) -> None:
        """Lets a paused domain run again; succeeds for one that runs already."""
        ...

    def destroy_all_running(self) -> bool:
        """Hard off of every active domain, pvc's or not (the self-fence); True once none is."""
        ...

    def migrate(self, uuid: str, peer_uri: str, address: str | None, max_downtime_ms: int) -> None:
        """Live migration to the hypervisor at `peer_uri` (over `address`, if given): the guest
        runs there or still here, never in both places and never nowhere."""
        ...

    def console_file(self, uuid: str) -> str | None:
        """The file the domain's serial console is logged to, if any."""
        ...

    def grow_disk(self, uuid: str, source: str, size: int) -> bool:
        """Grows the running domain's disks backed by `source` ("pool/volume" or a path) to
        `size` bytes where the guest sees them smaller; True if one grew."""
        ...

    def define_ceph_secret(self, uuid: str, usage: str, key: str) -> None:
        """Defines or updates the private libvirt secret `uuid` (usage type ceph, name
        `usage`) holding the cephx `key` (base64) QEMU opens RBD disks with; never logged."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AddressDriver(Protocol):
    """IP addresses on the interfaces of the caller's network namespace. Failures raise
    Unavailable with the kernel's reason."""

    def add_address(self, interface: str, cidr: str) -> None: ...

    def remove_address(self, interface: str, cidr: str) -> None:
        """Also succeeds when the interface does not exist."""
        ...

    def has_address(self, interface: str, cidr: str) -> bool: ...

    def announce_address(self, interface: str, cidr: str) -> None:
        """Tells the segment that the address now lives here (gratuitous ARP for IPv4)."""
        ...


@runtime_checkable
class PowerDriver(Protocol):
    """Power control of one node (its BMC). Each request is bounded by `timeout` and returns
    once the controller accepted it: the chassis may change state a moment later, so verify
    with `power_state`. Failures raise PowerError; the fence procedure is built on these three
    requests only (pvc.drivers.power_fence)."""

    @property
    def address(self) -> str:
        """Where the controller is, for messages."""
        ...

    def power_state(self, timeout: float = 5.0) -> str:
        """ "on" or "off"."""
        ...

    def power_off(self, timeout: float = 5.0) -> None:
        """Hard off: a node being fenced cannot be trusted to shut down."""
        ...

    def power_on(self, timeout: float = 5.0) -> None: ...


class CephDriver(Protocol):
    """The Ceph cluster through librados (python3-rados): pvc.drivers.ceph.Ceph.

    One connection per process, from the cluster's ceph.conf and keyring, opened with
    client_mount_timeout, rados_mon_op_timeout and rados_osd_op_timeout set, so a cluster
    without quorum or with blocked PGs fails a call with CephUnavailable after its timeout
    instead of blocking the caller forever; other failures raise CephError with Ceph's errno.
    RBD images (pvc.drivers.ceph_images), their locks (pvc.drivers.rbd_locks) and OSD devices
    (pvc.drivers.ceph_volume) build on it.
    """

    def mon_command(self, command: dict[str, Any]) -> Any:
        """A monitor command (the JSON form of a `ceph` command line, answered as JSON): its
        parsed answer; CephError with the monitors' message when it returns non-zero."""
        ...

    def mgr_command(self, command: dict[str, Any]) -> Any:
        """A manager command (what the `ceph` tool sends to "mon-mgr", e.g. `osd purge`), as
        mon_command."""
        ...

    def command(self, prefix: str, **arguments: Any) -> Any:
        """mon_command({"prefix": prefix, "format": "json", **arguments})."""
        ...

    def ioctx(self, pool: str) -> AbstractContextManager[Any]:
        """A rados I/O context on the pool, closed on exit."""
        ...

    def client_address(self) -> str:
        """This client's IP address as the cluster sees it."""
        ...

    def client_key(self) -> str:
        """The cephx key of this client, from its keyring."""
        ...

    def translate(self, exc: Exception, what: str) -> CephError:
        """A binding's exception (rados, rbd) as a CephError about `what`; a timeout or a
        lost connection is CephUnavailable and also drops the connection."""
        ...

    def close(self) -> None: ...


class ImagesDriver(Protocol):
    """RBD images and their snapshots through librbd (python3-rbd), on a CephDriver's
    connection: pvc.drivers.ceph_images.Images.

    Images have the features layering, exclusive-lock, object-map and fast-diff. Failures
    raise CephError with Ceph's errno (ENOENT missing, EEXIST exists, EBUSY a snapshot with
    clones) or CephUnavailable; sizes are bytes; "parent" is "pool/image@snapshot" or None.
    """

    def names(self, pool: str) -> list[str]: ...

    def info(self, pool: str, name: str) -> dict[str, Any]:
        """{"size", "features", "parent", "snapshots": [{"name", "size", "protected"}]}."""
        ...

    def create(self, pool: str, name: str, size: int) -> None: ...

    def remove(self, pool: str, name: str) -> None:
        """Removes the image with its snapshots."""
        ...

    def resize(self, pool: str, name: str, size: int) -> None: ...

    def rename(self, pool: str, name: str, new_name: str) -> None: ...

    def clone(self, pool: str, name: str, new_name: str, snapshot: str | None = None) -> None:
        """A copy-on-write clone of name@snapshot, or a full copy without a snapshot."""
        ...

    def writer(self, pool: str, name: str) -> AbstractContextManager[Any]:
        """The open image, for `write(data, offset)`."""
        ...

    def snapshot_create(self, pool: str, name: str, snapshot: str) -> None: ...

    def snapshot_rename(self, pool: str, name: str, snapshot: str, new_name: str) -> None: ...

    def snapshot_remove(self, pool: str, name: str, snapshot: str) -> None: ...

    def snapshot_rollback(self, pool: str, name: str, snapshot: str) -> None: ...

    def snapshot_list(self, pool: str, name: str) -> list[dict[str, Any]]: ...


class FirewallDriver(Protocol):
    """nftables through `nft -f -`, in the caller's network namespace.

    pvc owns one table, `inet pvc`, and touches no other (the host's rules stay). The daemon
    renders the whole table from Zookeeper and `apply` replaces it in one nft transaction
    (`table inet pvc` / `delete table inet pvc` / `table inet pvc {...}`): the kernel holds the
    old table or the new one, never a mix, and a rejected table changes nothing. Failures raise
    FirewallError with nft's message.
    """

    def apply(self, table: str) -> None:
        """Makes `table` (the body of `table inet pvc { ... }`) the whole table."""
        ...

    def current(self) -> str | None:
        """The table as the kernel holds it (`nft list table inet pvc`); None if absent."""
        ...

    def remove(self) -> None: ...


class DhcpDnsDriver(Protocol):
    """dnsmasq for the managed networks: one process per network, supervised by the daemon.

    Each network has a folder of its own under the daemon's state directory with the config
    file the daemon rendered (interface, bind-interfaces, DHCP ranges, domain; dhcp-hostsfile
    for the reservations), the leases file and the pid file. The process runs in the foreground
    as the daemon's child, so its death is seen (`running` turns False) and the primary
    services' repair starts it again. start and stop are idempotent (a PrimaryService per
    network); new reservations rewrite the hosts file and send SIGHUP, which keeps the leases.
    Failures raise DnsmasqError with dnsmasq's own message.
    """

    def start(self, network: str, config: str) -> None: ...

    def stop(self, network: str) -> None: ...

    def running(self, network: str) -> bool: ...

    def set_hosts(self, network: str, hosts: list[str]) -> None:
        """Replaces the reservations (dhcp-hostsfile lines, MAC,address[,name])."""
        ...

    def leases(self, network: str) -> list[tuple[str, str, str]]:
        """(MAC, address, hostname) of each lease in the leases file."""
        ...


# --- OSDs on this node's disks (pvc.drivers.ceph_volume, pvc.drivers.osd_process) -------------


class DeviceError(DriverError):
    """A disk cannot become (or stop being) an OSD: missing, not a block device, a failed
    ceph-volume step."""

    http_status = 400


class DeviceInUse(DeviceError):
    """The disk holds something (a filesystem, a label, a mount, a holder)."""

    http_status = 409


@dataclass(frozen=True)
class PreparedOsd:
    """What a prepared disk is to Ceph: the OSD's id and its own UUID (ceph-volume's osd_uuid)."""

    osd_id: int
    osd_uuid: str


@runtime_checkable
class OsdDeviceDriver(Protocol):
    """A node's disks as bluestore OSDs (ceph-volume raw mode). Refusals and failures raise
    DeviceError (DeviceInUse for a disk in use), one line each; the OSD's key never leaves."""

    def check_free(self, device: str) -> int:
        """Refuses what cannot become an OSD; the whole, unused device's size in bytes."""
        ...

    def label(self, device: str) -> dict[str, Any] | None:
        """The device's bluestore label (whoami, osd_uuid, ceph_fsid ...), without the key."""
        ...

    def prepare(self, device: str) -> PreparedOsd:
        """Makes the device a new OSD of the cluster (not started)."""
        ...

    def activate(self, device: str, osd_id: int, osd_uuid: str) -> None:
        """Mounts the OSD's folder in this mount namespace (idempotent)."""
        ...

    def deactivate(self, osd_id: int) -> None:
        """Unmounts the OSD's folder (succeeds when it is not mounted)."""
        ...

    def zap(self, device: str) -> None:
        """Wipes the device's signatures and first 10 MiB."""
        ...


@runtime_checkable
class OsdProcessDriver(Protocol):
    """The seam that runs this node's OSD daemons: systemd's ceph-osd@N where systemd runs,
    otherwise ceph-osd processes the node daemon supervises. Failures raise DeviceError."""

    def start(self, osd_id: int, host: str, address: str) -> None:
        """Starts the OSD (a no-op if it runs) in CRUSH host `host`, listening on `address`."""
        ...

    def stop(self, osd_id: int) -> None:
        """Stops the OSD and waits until it has (succeeds when it does not run)."""
        ...

    def running(self, osd_id: int) -> bool: ...

    def stop_all(self) -> None:
        """What the node daemon does on its way out (supervised OSDs stop with it)."""
        ...
