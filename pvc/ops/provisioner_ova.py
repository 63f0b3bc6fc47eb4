"""OVA images: an OVA's disks imported as volumes, its hardware kept as an `ova` record, and a
profile of type "ova" to build VMs from it.

An upload is an upload (pvc.ops.storage_upload, job kind `ova_upload`): the OVA's bytes go in
pieces into the staging image `_ova_<name>` of the pool (no pvc name can start with '_'),
held by this API process. Its finish, on a thread:
1. reads the staging image as a tar (tarfile over the image: only headers and the OVF are
   read), refusing what is not a tar, has no (or several) .ovf, or lacks a file its OVF
   names; parses the OVF (pvc.ops.ovf);
2. asks qemu-img what each disk holds, straight from its place in the staging image (a raw
   offset/size node under the disk's format: no copy, and no backing or extent file is ever
   opened: pvc.drivers.qemu_img), refusing a disk larger than the OVF's capacity;
3. under the pool's lock: the volumes `ova_<name>_<disk_id>` are free, the pool has room
   for them all (the fill check), and they are made; each disk is converted into its volume;
4. removes the staging image, then writes ONE transaction: the volumes' records, the ova
   record ({name, pool, volumes: [{disk_id, volume, size}], vcpus, memory (MiB), nics, ovf:
   a summary}), the profile NAME ({type: "ova", ova: NAME, no templates}), the task's end.
A failure, a cancel or a client gone quiet removes every image the upload made and records
nothing. If the API process dies, the primary's daemon removes them (`leftovers`, run by
pvc.node.storage_upload's cleanup kind). Two uploads of one name in different pools can both
start; the second to finish fails at the transaction (the records exist) and cleans up.

A removal is refused while a profile other than the OVA's own uses it, or while a VM uses one
of its volumes (or a clone of one); it removes the records (the ova record and its profile, in
one transaction guarded by their versions), then the volumes.
"""

import logging
import re
import tarfile
from typing import Any

from pvc import limits
from pvc.config import Config
from pvc.drivers import qemu_img, rbd_file
from pvc.errors import Conflict, InvalidInput, NotFound, PvcError
from pvc.ops import (
    jobs,
    ovf,
    provisioner_store,
    storage_ceph,
    storage_upload,
    storage_volume,
    user_input,
    vm_volumes,
)
from pvc.ops.sizes import SIZE_MAX, format_size
from pvc.ops.storage_ceph import refusals
from pvc.zk.store import Store

log = logging.getLogger("pvc.ops.provisioner_ova")
KIND = "ova_upload"
STAGING_PREFIX = "_ova_"
MEMBERS_MAX = 1000  # files in an OVA
LONGEST_DISK_ID = "vdz"


def label(name: str) -> str:
    return provisioner_store.label("ova", name)


def volume_name(name: str, disk_id: str) -> str:
    return f"ova_{name}_{disk_id}"


def list_ovas(store: Store, limit: str | None = None) -> list[dict[str, Any]]:
    return provisioner_store.list_records(store, "ova", limit)


def info(store: Store, name: str) -> dict[str, Any]:
    return provisioner_store.read(store, "ova", name)


# --- upload ----------------------------------------------------------------------------------


def begin(store: Store, config: Config, name: str, pool: str, file_size: int) -> dict[str, Any]:
    """Starts an upload of a `file_size`-byte OVA into `pool`; {"message", "task",
    "piece_max"}: PUT the pieces, then finish."""
    user_input.require_name(name, "OVA name")
    if len(volume_name(name, LONGEST_DISK_ID)) > limits.NAME_MAX:
        longest = limits.NAME_MAX - len(volume_name("", LONGEST_DISK_ID))
        raise InvalidInput(f"invalid OVA name {user_input.quoted(name)}: at most {longest} "
                           "characters (its volumes are named ova_<name>_<disk>)")  # fmt: skip
    storage_ceph.require_pool(store, pool)
    if not 0 < file_size < SIZE_MAX:
        raise InvalidInput(f"invalid file size {file_size}: from 1 byte to 8192P")
    _require_free(store, name)
    upload = storage_upload.Upload(
        store, config, pool, name, "ova", file_size, STAGING_PREFIX + name, {}, -1,
        kind=KIND, subject=label(name), complete=_complete,
    )  # fmt: skip
    args = {"name": name, "pool": pool, "size": file_size, "image": upload.image}
    storage_upload.stage(upload, args, lambda: _require_free(store, name))
    return {
        "message": f"upload of {label(name)} started (task {upload.task})",
        "task": upload.task,
        "piece_max": storage_upload.PIECE_MAX,
    }


def _require_free(store: Store, name: str) -> None:
    """Conflict if the OVA, a profile of its name, or an upload of it in progress exists."""
    for kind in ("ova", "profile"):
        if store.exists(provisioner_store.key(kind, name)):
            raise Conflict(f"{provisioner_store.label(kind, name)} already exists")
    for job in jobs.list_jobs(store.zk, kind=KIND):
        if not jobs.ended(job) and job["args"].get("name") == name:
            raise Conflict(f"{label(name)} is being uploaded (task {job['id']})")


def receive(name: str, task: str, offset: int, data: bytes) -> dict[str, Any]:
    return storage_upload.write_piece(storage_upload.find(task, KIND, label(name)), offset, data)


def finish(name: str, task: str) -> dict[str, Any]:
    return storage_upload.complete(storage_upload.find(task, KIND, label(name)))


def _complete(upload: storage_upload.Upload) -> None:
    """The OVA's finish (on the upload's thread): read, check, convert, record."""
    store, config, pool, name = upload.store, upload.config, upload.pool, upload.volume
    ceph = storage_ceph.connection(config)
    storage_upload.progress(upload, upload.size, "reading the OVA")
    staging = storage_volume.label(pool, upload.image)
    with refusals(staging), rbd_file.opened(ceph, pool, upload.image) as file:
        members, descriptor = _read_archive(file)
    parsed = ovf.parse(descriptor)
    disks = [(disk, _member(members, parsed, disk.file)) for disk in parsed.disks]
    for disk, member in disks:
        _check_disk(upload, disk, member)
    volumes = [volume_name(name, disk.disk_id) for disk, _ in disks]
    total = sum(disk.capacity for disk, _ in disks)
    images = storage_ceph.images(config)
    with storage_ceph.pool_lock(store, pool):
        for volume in volumes:
            storage_ceph.require_no_volume(store, pool, volume)
        storage_ceph.check_room(store, config, pool, total)
        for (disk, _), volume in zip(disks, volumes, strict=True):
            with refusals(storage_volume.label(pool, volume)):
                images.create(pool, volume, disk.capacity)
            upload.made.add(volume)
    upload.write_record(lambda r: r | {"progress": r["progress"] | {"total": total}})
    before = 0
    for (disk, member), volume in zip(disks, volumes, strict=True):
        extent = _extent(member)
        doing = f"converting {disk.disk_id} ({disk.file})"
        if reason := storage_upload.convert(upload, disk.image_format, volume, disk.capacity,
                                            doing, extent, before):  # fmt: skip
            storage_upload.stop(upload, *reason)
            return
        before += disk.capacity
    images.remove(pool, upload.image)
    upload.made.discard(upload.image)
    _record(upload, parsed, volumes)


def _record(upload: storage_upload.Upload, parsed: ovf.Ovf, volumes: list[str]) -> None:
    """ONE transaction: the volumes' records, the ova record, its profile, the task's end."""
    pool, name = upload.pool, upload.volume
    images = storage_ceph.images(upload.config)
    values: dict[Any, Any] = {}
    expect = {provisioner_store.key("ova", name): -1, provisioner_store.key("profile", name): -1}
    listed = []
    for disk, volume in zip(parsed.disks, volumes, strict=True):
        stats = storage_volume.stats_of(images.info(pool, volume))
        values |= storage_volume.record_values(pool, volume, stats)
        expect[("volume", pool, volume)] = -1
        listed.append({"disk_id": disk.disk_id, "volume": volume, "size": stats["size"]})
    record = {"name": name, "pool": pool, "volumes": listed, "vcpus": parsed.vcpus,
              "memory": parsed.memory, "nics": parsed.nics, "ovf": parsed.summary()}  # fmt: skip
    profile = {"name": name, "type": "ova", "system_template": None, "network_template": None,
               "storage_template": None, "userdata": None, "script": None, "ova": name,
               "arguments": {}}  # fmt: skip
    values[provisioner_store.key("ova", name)] = record
    values[provisioner_store.key("profile", name)] = profile
    result = {"name": name, "pool": pool, "volumes": volumes, "profile": name}
    storage_upload.done(upload, result, values, expect)
    log.info("OVA %s imported into pool %s: %s", name, pool, ", ".join(volumes))


def _read_archive(file: Any) -> tuple[dict[str, tarfile.TarInfo], bytes]:
    """The OVA's regular files by name, and its OVF's bytes."""
    members: dict[str, tarfile.TarInfo] = {}
    try:
        with tarfile.open(fileobj=file, mode="r:") as tar:
            while (member := tar.next()) is not None:
                if len(members) >= MEMBERS_MAX:
                    raise InvalidInput(f"the OVA has more than {MEMBERS_MAX} files")
                if member.isreg():
                    members[member.name.removeprefix("./")] = member
    except tarfile.TarError as exc:
        raise InvalidInput(f"the OVA is not a tar archive ({exc})") from None
    descriptors = sorted(n for n in members if n.lower().endswith(".ovf"))
    if not descriptors:
        raise InvalidInput("the OVA has no OVF descriptor (a .ovf file)")
    if len(descriptors) > 1:
        raise InvalidInput(f"the OVA has several OVF descriptors: {', '.join(descriptors)}")
    member = members[descriptors[0]]
    if member.size > ovf.OVF_MAX:
        raise InvalidInput(f"the OVA's OVF is {member.size} bytes: at most {ovf.OVF_MAX}")
    file.seek(member.offset_data)
    return members, file.read(member.size)


def _member(members: dict[str, tarfile.TarInfo], parsed: ovf.Ovf, href: str) -> tarfile.TarInfo:
    """The archive member holding the disk file `href`, as the OVF describes it."""
    member = members.get(href)
    if member is None:
        raise InvalidInput(f"the OVF names disk file {user_input.quoted(href)}, which the OVA "
                           "lacks")  # fmt: skip
    if member.issparse():
        raise InvalidInput(f"the OVA's file {user_input.quoted(href)} is stored sparse")
    expected = parsed.files.get(href)
    if expected is not None and expected != member.size:
        raise InvalidInput(f"the OVF gives file {user_input.quoted(href)} {expected} bytes; "
                           f"the OVA holds {member.size}")  # fmt: skip
    return member


def _extent(member: tarfile.TarInfo) -> qemu_img.Extent:
    """Where a member's bytes are in the OVA, rounded up to whole 512-byte blocks (what
    qemu's raw node needs; a tar pads every member to them, with zeros)."""
    return member.offset_data, -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _check_disk(upload: storage_upload.Upload, disk: ovf.Disk, member: tarfile.TarInfo) -> None:
    """Refuses a disk that is not of its format, names other files, or holds more than the
    OVF's capacity (what its volume is made with)."""
    ceph = storage_ceph.connection(upload.config)
    extent = _extent(member)
    try:
        held = qemu_img.virtual_size(ceph, upload.pool, upload.image, disk.image_format, extent)
    except qemu_img.QemuImgError as exc:
        raise InvalidInput(f"disk {disk.disk_id} ({disk.file}): {exc.message}") from None
    if held > disk.capacity:
        raise InvalidInput(
            f"disk {disk.disk_id} ({disk.file}) holds {format_size(held)}, more than its "
            f"capacity in the OVF ({format_size(disk.capacity)})"
        )


# --- the cleanup of an upload whose API process died ----------------------------------------


def leftovers(view: Store, config: Config, args: dict[str, Any]) -> tuple[str, list[str]]:
    """What an OVA upload whose API process died may have left in its pool: its staging image
    and the volumes `ova_<name>_vd*` without a record (while it ran, no other upload of the
    name could make them, and a recorded one belongs to an earlier import)."""
    pool, name = args["pool"], args["name"]
    pattern = re.compile(re.escape(volume_name(name, "")) + "vd[a-z]{1,2}")
    made = [
        image
        for image in storage_ceph.images(config).names(pool)
        if pattern.fullmatch(image) and not view.exists(("volume", pool, image))
    ]
    return label(name), [args["image"], *made]


# --- removal ---------------------------------------------------------------------------------


def remove(store: Store, config: Config, name: str) -> dict[str, Any]:
    """Removes the OVA, its profile and its volumes (see the module's docstring)."""
    record, version = provisioner_store.read_versioned(store, "ova", name)
    profile, profile_version = store.read_versioned(provisioner_store.key("profile", name))
    own = profile is not None and profile.get("type") == "ova" and profile.get("ova") == name
    others = [p for p in provisioner_store.users(store, "ova", name) if not (own and p == name)]
    if others:
        which = "profile" if len(others) == 1 else "profiles"
        raise Conflict(f"{label(name)} is used by {which} {', '.join(others)}")
    pool = record["pool"]
    images = storage_ceph.images(config)
    volumes = [v["volume"] for v in record["volumes"]]
    for volume in volumes:
        users = vm_volumes.users(store, pool, volume)
        if users:
            raise Conflict(f"{label(name)}: its {storage_volume.label(pool, volume)} is used by "
                           f"VM(s) {', '.join(users)}")  # fmt: skip
        try:
            with refusals(storage_volume.label(pool, volume)):
                images.require_removable(pool, volume)
        except NotFound:
            pass  # gone from Ceph already (an earlier removal stopped half way)
    key, profile_key = provisioner_store.key("ova", name), provisioner_store.key("profile", name)
    store.write({}, expect={key: version, **({profile_key: profile_version} if own else {})},
                delete=[key, *([profile_key] if own else [])])  # fmt: skip
    left = []
    for volume in volumes:
        try:
            storage_volume.remove(store, config, pool, volume)
        except NotFound:
            pass
        except PvcError as exc:
            left.append(f"{storage_volume.label(pool, volume)} ({exc.message})")
    if left:
        raise Conflict(f"{label(name)} was removed, but not its {'; '.join(left)}: remove them "
                       "with 'pvc storage volume remove'")  # fmt: skip
    return {"message": f"{label(name)} removed, with its volumes" + (" and profile" if own else ""),
            "name": name}  # fmt: skip
