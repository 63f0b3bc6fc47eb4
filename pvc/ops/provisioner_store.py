"""The provisioner's records in Zookeeper: one JSON record per kind and name, under
`/provisioner/<kind>/<name>` (pvc.zk.schema `provisioner.<kind>`).

Kinds and what their records hold (every record also has `name`):
- system:   vcpus (int), memory (MiB, int), serial (bool), vnc (bool), vnc_bind (str|None),
            node_limit (list of node names), node_selector (str|None), node_autostart (bool),
            migration_method (live|shutdown|none)
- network:  mac_template (str|None), networks (list of VNIs, in NIC order)
- storage:  disks: list of {disk_id ("vda", ...), pool, size (bytes|None), source_volume
            (str|None: a volume of `pool` to clone), filesystem (str|None), filesystem_args
            (list of str), mountpoint (str|None)}, in disk order
- userdata: text (cloud-init YAML or multipart, or a script)
- script:   text (Python defining the install script's class, pvc.provisioner.script)
- ova:      the OVA's parsed OVF and its volumes (pvc.ops.provisioner_ova)
- profile:  type ("provisioner" | "ova"), system_template, network_template,
            storage_template, userdata, script, ova (names of records, or None), arguments
            (dict of str -> str: the install script's arguments)

Every verb goes through here: validate the name, guard (the record exists or not), one
transaction guarded by the record's version. A record a profile names cannot be removed; the
refusal names the profiles.
"""

from typing import Any

from pvc.errors import Conflict, NotFound
from pvc.ops import patterns, user_input
from pvc.ops.cluster import require_initialized
from pvc.zk.store import Store

KINDS = ("system", "network", "storage", "userdata", "script", "ova", "profile")
LABELS = {
    "system": "system template",
    "network": "network template",
    "storage": "storage template",
    "userdata": "userdata",
    "script": "script",
    "ova": "OVA",
    "profile": "profile",
}
# A profile's fields that name other records: field -> the kind it names.
PROFILE_REFERENCES = {
    "system_template": "system",
    "network_template": "network",
    "storage_template": "storage",
    "userdata": "userdata",
    "script": "script",
    "ova": "ova",
}


def key(kind: str, name: str) -> tuple[str, str]:
    return (f"provisioner.{kind}", name)


def folder(kind: str) -> str:
    return f"provisioner.{kind}s"


def label(kind: str, name: str) -> str:
    """How a refusal names a record: "system template 'small'"."""
    return f"{LABELS[kind]} {user_input.quoted(name)}"


def names(store: Store, kind: str) -> list[str]:
    require_initialized(store)
    return store.children(folder(kind))


def list_records(store: Store, kind: str, limit: str | None = None) -> list[dict[str, Any]]:
    """Every record of `kind`, sorted by name; `limit` keeps the names containing that text."""
    if limit is not None:
        patterns.check_length(limit, f"{LABELS[kind]} name filter (limit)")
    found = [name for name in names(store, kind) if not limit or limit in name]
    records = store.read_many([key(kind, name) for name in found])
    return [record for record in records if record is not None]


def read(store: Store, kind: str, name: str) -> dict[str, Any]:
    """The record; InvalidInput for a bad name, NotFound (404 naming it) if there is none."""
    return read_versioned(store, kind, name)[0]


def read_versioned(store: Store, kind: str, name: str) -> tuple[dict[str, Any], int]:
    user_input.require_name(name, f"{LABELS[kind]} name")
    require_initialized(store)
    record, version = store.read_versioned(key(kind, name))
    if record is None:
        raise NotFound(f"{label(kind, name)} does not exist")
    return record, version


def add(store: Store, kind: str, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """Stores a new record (Conflict if one of that name exists); {"message", "name"}."""
    user_input.require_name(name, f"{LABELS[kind]} name")
    require_initialized(store)
    if store.exists(key(kind, name)):
        raise Conflict(f"{label(kind, name)} already exists")
    store.write({key(kind, name): {**record, "name": name}}, expect={key(kind, name): -1})
    return {"message": f"{LABELS[kind]} '{name}' added", "name": name}


def replace(
    store: Store, kind: str, name: str, record: dict[str, Any], version: int
) -> dict[str, Any]:
    """Writes a changed record read at `version` (ConcurrentChange if it changed since)."""
    store.write({key(kind, name): {**record, "name": name}}, expect={key(kind, name): version})
    return {"message": f"{LABELS[kind]} '{name}' modified", "name": name}


def referenced(store: Store, profile: dict[str, Any]) -> tuple[dict[Any, Any], dict[Any, int]]:
    """What a transaction that stores `profile` writes with it: every record it names,
    rewritten unchanged and guarded by its version. NotFound (naming it) for a missing one.
    The rewrite moves each record's version, so a removal that checked "no profile uses it"
    before this profile existed fails instead of leaving the profile naming nothing."""
    values: dict[Any, Any] = {}
    expect: dict[Any, int] = {}
    for field, kind in PROFILE_REFERENCES.items():
        name = profile.get(field)
        if name is not None:
            record, version = read_versioned(store, kind, name)
            values[key(kind, name)] = record
            expect[key(kind, name)] = version
    return values, expect


def users(store: Store, kind: str, name: str) -> list[str]:
    """The profiles that name the record, sorted."""
    fields = [field for field, named in PROFILE_REFERENCES.items() if named == kind]
    return [
        profile["name"]
        for profile in list_records(store, "profile")
        if any(profile.get(field) == name for field in fields)
    ]


def require_unused(store: Store, kind: str, name: str) -> None:
    """Conflict naming the profiles that use the record, if any do."""
    used_by = users(store, kind, name)
    if used_by:
        which = "profile" if len(used_by) == 1 else "profiles"
        raise Conflict(f"{label(kind, name)} is used by {which} {', '.join(used_by)}")


def remove(
    store: Store, kind: str, name: str, also_delete: list[Any] | None = None
) -> dict[str, Any]:
    """Removes a record no profile uses (and `also_delete` in the same transaction)."""
    _, version = read_versioned(store, kind, name)
    require_unused(store, kind, name)
    delete = [key(kind, name), *(also_delete or [])]
    store.write({}, expect={key(kind, name): version}, delete=delete)
    return {"message": f"{LABELS[kind]} '{name}' removed", "name": name}
