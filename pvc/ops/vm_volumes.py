"""Which VMs use which RBD volumes: read from each VM's stored domain XML (its network disks
with protocol "rbd", source name "pool/volume"), so storage verbs can refuse to remove what a
VM needs, and `vm define`/`modify` refuse a VM whose volumes pvc does not know."""

from pvc.errors import InvalidInput, NotFound, PvcError
from pvc.ops import domain_xml, placement, user_input
from pvc.zk import schema
from pvc.zk.store import Store


def volumes_of(xml: str | None) -> tuple[str, ...]:
    """The "pool/volume" of each RBD disk of a stored domain XML (none if it cannot be read)."""
    if not xml:
        return ()
    try:
        return domain_xml.parse(xml).volumes
    except PvcError:
        return ()


def _using(store: Store, pool: str, volume: str | None) -> list[str]:
    """The UUIDs of the VMs that use `pool/volume` (any volume of the pool when `volume` is
    None)."""
    found = []
    for uuid in store.children("base.domains"):
        for used in volumes_of(store.read(("domain.xml", uuid))):
            used_pool, _, used_volume = used.partition("/")
            if used_pool == pool and volume in (None, used_volume):
                found.append(uuid)
                break
    return found


def _names(store: Store, uuids: list[str]) -> list[str]:
    return sorted(store.read(("domain", uuid)) or uuid for uuid in uuids)


def users(store: Store, pool: str, volume: str | None = None) -> list[str]:
    """The names of the VMs that use the volume `pool/volume` (any volume of the pool when
    `volume` is None), sorted."""
    return _names(store, _using(store, pool, volume))


def running_users(store: Store, pool: str, volume: str) -> list[str]:
    """The names of the VMs that use `pool/volume` and run (placement.is_running: by their
    wanted state, or their node's observed one)."""
    running = [
        uuid
        for uuid in _using(store, pool, volume)
        if placement.is_running(
            *store.read_many([("domain.state", uuid), ("domain.observed", uuid)])
        )
    ]
    return _names(store, running)


def require_existing(store: Store, volumes: tuple[str, ...]) -> None:
    """Each "pool/volume" names a volume pvc keeps (InvalidInput for a malformed name,
    NotFound naming every missing volume)."""
    missing = []
    for volume in volumes:
        pool, _, name = volume.partition("/")
        if not (schema.valid_name(pool) and schema.valid_name(name)):
            raise InvalidInput(
                f"RBD disk source {user_input.quoted(volume)} is not POOL/VOLUME with valid names"
            )
        if not store.exists(("volume", pool, name)):
            missing.append(volume)
    if missing:
        raise NotFound(
            f"no such volume: {', '.join(missing)} (create it with pvc storage volume add)"
        )
