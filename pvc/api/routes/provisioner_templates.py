"""Provisioner template endpoints: system, network and storage templates, their networks and
disks (pvc.ops.provisioner_templates).

Listing, describing and removing a template look the same for the three kinds and are
registered for each below. A list of names (a node limit) or of VNIs is comma-separated;
filesystem arguments are separated by spaces.
"""

from collections.abc import Callable
from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MESSAGE, listing, record
from pvc.api.params import Param, name_list_param, name_param
from pvc.api.routes.storage_volume import size_param
from pvc.api.routes.vm import _names
from pvc.limits import NODE_LIMIT_MAX, PATTERN_MAX
from pvc.ops import placement, provisioner_store
from pvc.ops import provisioner_template_checks as checks
from pvc.ops import provisioner_templates as templates
from pvc.ops import vm as vm_ops
from pvc.ops.network_records import VNI_MAX

TAGS = ("provisioner",)
BASE = "/provisioner/template"
TEMPLATE = record("name")
NOT_FOUND = "No such template, or the cluster is not initialised"
LIMIT = Param("limit", str, "Only the templates whose name contains this", max_length=PATTERN_MAX)
VNI_LIST_MAX = checks.NETWORKS_MAX * 16  # characters: the VNIs, commas and spaces
VNI_LIST_PATTERN = rf"^ *(?:[0-9]{{1,9}} *(?:, *[0-9]{{1,9}} *){{0,{checks.NETWORKS_MAX - 1}}})?$"


def _system_params(adding: bool) -> tuple[Param, ...]:
    """A system template's settings: required or defaulted when adding, else all optional
    (None: unchanged)."""

    def default(value: Any) -> Any:
        return value if adding else None

    cleared = "" if adding else "; '' clears it"
    return (
        Param("vcpus", int, "vCPUs", required=adding, minimum=1, maximum=checks.VCPUS_MAX),
        Param("memory", int, "Memory in MiB", required=adding, minimum=checks.MEMORY_MIN,
              maximum=checks.MEMORY_MAX),
        Param("serial", bool, "A serial console (the VM's console log)", default=default(False)),
        Param("vnc", bool, "A VNC graphical console", default=default(False)),
        Param("vnc_bind", str, f"The address VNC listens on (default: localhost){cleared}",
              max_length=checks.VNC_BIND_MAX, pattern=checks.VNC_BIND_PATTERN,
              label="VNC bind address", rule="an IP address"),
        name_list_param("node_limit", f"The nodes the VM may run on (empty: any){cleared}",
                        "node limit", NODE_LIMIT_MAX),
        Param("node_selector", str, "How to choose its node: mem, memprov, load, vcpus or vms; "
              "default (or empty): the cluster's vm.default_selector",
              choices=checks.SELECTOR_DEFAULT + placement.SELECTORS),
        Param("node_autostart", bool, "Start it when its node becomes ready",
              default=default(False)),
        Param("migration_method", str, "How to move it between nodes",
              choices=vm_ops.MIGRATION_METHODS, default=default("live")),
    )  # fmt: skip


def _named(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Names an endpoint function made for each kind (its name is its OpenAPI operationId)."""

    def rename(func: Callable[..., Any]) -> Callable[..., Any]:
        func.__name__ = name
        return func

    return rename


def _register_common(kind: str) -> None:
    """GET (list), GET, DELETE of one kind's templates."""
    label = provisioner_store.LABELS[kind]

    @endpoint(
        "GET",
        f"{BASE}/{kind}",
        summary=f"Every {label}",
        tags=TAGS,
        params=(LIMIT,),
        responses={404: "The cluster is not initialised"},
        returns=listing(TEMPLATE),
    )
    @_named(f"get_{kind}_templates")
    def get_list(ctx: Context, limit: str | None) -> list[dict[str, Any]]:
        return templates.list_templates(ctx.zk, kind, limit)

    @endpoint(
        "GET",
        f"{BASE}/{kind}/<template>",
        summary=f"One {label}, and the profiles using it",
        tags=TAGS,
        responses={404: NOT_FOUND},
        returns=TEMPLATE,
    )
    @_named(f"get_{kind}_template")
    def get_one(ctx: Context, template: str) -> dict[str, Any]:
        return templates.info(ctx.zk, kind, template)

    @endpoint(
        "DELETE",
        f"{BASE}/{kind}/<template>",
        summary=f"Remove a {label}",
        tags=TAGS,
        responses={404: NOT_FOUND, 409: "A profile uses it"},
        returns=MESSAGE,
    )
    @_named(f"delete_{kind}_template")
    def delete_one(ctx: Context, template: str) -> dict[str, Any]:
        return templates.remove(ctx.zk, kind, template)


for _kind in templates.KINDS:
    _register_common(_kind)


@endpoint(
    "GET",
    BASE,
    summary="Every template: system, network and storage",
    tags=TAGS,
    params=(LIMIT,),
    responses={404: "The cluster is not initialised"},
    returns={
        "type": "object",
        "required": list(templates.KINDS),
        "properties": {kind: listing(TEMPLATE) for kind in templates.KINDS},
    },
)
def get_templates(ctx: Context, limit: str | None) -> dict[str, Any]:
    return templates.list_all(ctx.zk, limit)


@endpoint(
    "POST",
    f"{BASE}/system",
    summary="Add a system template: vCPUs, memory, consoles, placement",
    tags=TAGS,
    params=(
        name_param("name", "The template's name", "template name", required=True),
        *_system_params(adding=True),
    ),
    responses={404: "The cluster is not initialised", 409: "The template exists"},
    returns=MESSAGE,
)
def post_system(ctx: Context, name: str, node_limit: str | None, **settings: Any) -> dict[str, Any]:
    return templates.add_system(ctx.zk, name, node_limit=_names(node_limit), **settings)


@endpoint(
    "PUT",
    f"{BASE}/system/<template>",
    summary="Change a system template's settings (those given)",
    tags=TAGS,
    params=_system_params(adding=False),
    responses={
        400: "Bad parameter, or nothing to change",
        404: NOT_FOUND,
        409: "It changed meanwhile",
    },
    returns=MESSAGE,
)
def put_system(
    ctx: Context, template: str, node_limit: str | None, **settings: Any
) -> dict[str, Any]:
    return templates.modify_system(ctx.zk, template, node_limit=_names(node_limit), **settings)


@endpoint(
    "POST",
    f"{BASE}/network",
    summary="Add a network template: a MAC template and networks, in NIC order",
    tags=TAGS,
    params=(
        name_param("name", "The template's name", "template name", required=True),
        Param(
            "mac_template",
            str,
            "How MAC addresses are made, e.g. {prefix}:ff:{vmid}:{netid} "
            "({prefix}: 52:54:00; {vmid}: the number ending the VM's name, {netid}: the NIC's "
            "index, two hex digits each); default: random addresses",
            max_length=checks.MAC_TEMPLATE_MAX,
        ),
        Param(
            "networks",
            str,
            f"VNIs, comma-separated, in NIC order (at most {checks.NETWORKS_MAX})",
            max_length=VNI_LIST_MAX,
            pattern=VNI_LIST_PATTERN,
            label="VNI list",
            rule="comma-separated VNIs",
        ),
    ),
    responses={
        400: "Bad parameter, a MAC template that gives no unicast address or the same one to "
        "two NICs, a VNI given twice",
        404: "The cluster is not initialised",
        409: "The template exists",
    },
    returns=MESSAGE,
)
def post_network(
    ctx: Context, name: str, mac_template: str | None, networks: str | None
) -> dict[str, Any]:
    vnis = [vni.strip() for vni in (networks or "").split(",") if vni.strip()]
    return templates.add_network(ctx.zk, name, mac_template, vnis)


@endpoint(
    "GET",
    f"{BASE}/network/<template>/net",
    summary="A network template's networks, in NIC order",
    tags=TAGS,
    responses={404: NOT_FOUND},
    returns=listing(
        {"type": "object", "required": ["vni"], "properties": {"vni": {"type": "integer"}}}
    ),
)
def get_nets(ctx: Context, template: str) -> list[dict[str, Any]]:
    return templates.networks_of(ctx.zk, template)


@endpoint(
    "POST",
    f"{BASE}/network/<template>/net",
    summary="Add a network to a network template (its last NIC)",
    tags=TAGS,
    params=(Param("vni", int, "The network's VNI", required=True, minimum=1, maximum=VNI_MAX),),
    responses={
        404: NOT_FOUND,
        409: "The network is in the template already, the template has the most networks it "
        "may, its MAC template would give two NICs one address, or it changed meanwhile",
    },
    returns=MESSAGE,
)
def post_net(ctx: Context, template: str, vni: int) -> dict[str, Any]:
    return templates.add_network_vni(ctx.zk, template, vni)


@endpoint(
    "DELETE",
    f"{BASE}/network/<template>/net/<vni>",
    summary="Remove a network from a network template",
    tags=TAGS,
    responses={404: "No such template, or the network is not in it", 409: "It changed meanwhile"},
    returns=MESSAGE,
)
def delete_net(ctx: Context, template: str, vni: str) -> dict[str, Any]:
    return templates.remove_network_vni(ctx.zk, template, vni)


@endpoint(
    "POST",
    f"{BASE}/storage",
    summary="Add an empty storage template (add its disks with POST .../disk)",
    tags=TAGS,
    params=(name_param("name", "The template's name", "template name", required=True),),
    responses={404: "The cluster is not initialised", 409: "The template exists"},
    returns=MESSAGE,
)
def post_storage(ctx: Context, name: str) -> dict[str, Any]:
    return templates.add_storage(ctx.zk, name)


@endpoint(
    "GET",
    f"{BASE}/storage/<template>/disk",
    summary="A storage template's disks, vda first",
    tags=TAGS,
    responses={404: NOT_FOUND},
    returns=listing(record("disk_id", "pool")),
)
def get_disks(ctx: Context, template: str) -> list[dict[str, Any]]:
    return templates.disks_of(ctx.zk, template)


@endpoint(
    "POST",
    f"{BASE}/storage/<template>/disk",
    summary="Add a disk to a storage template: a new volume (size) or a copy (source_volume)",
    tags=TAGS,
    params=(
        Param(
            "disk_id",
            str,
            "The disk: vda, vdb, ... (its virtio target)",
            required=True,
            max_length=3,
            pattern=checks.DISK_ID_PATTERN,
            label="disk id",
            rule="vd and a letter",
        ),
        name_param("pool", "The pool of its volume", "pool name", required=True),
        size_param(required=False),
        name_param(
            "source_volume", "A volume of the pool to copy (grown to size, if given)", "volume name"
        ),
        Param("filesystem", str, "A filesystem to make on it", choices=checks.FILESYSTEMS),
        Param(
            "filesystem_args",
            str,
            "Arguments for mkfs, separated by spaces",
            max_length=checks.FILESYSTEM_ARGS_MAX,
            pattern=checks.FILESYSTEM_ARGS_PATTERN,
            label="filesystem arguments",
            rule=checks.FILESYSTEM_ARGS_RULE,
        ),
        Param(
            "mountpoint",
            str,
            "Where the install script finds it mounted (needs a "
            f"filesystem or a source volume): {checks.MOUNTPOINT_RULE}",
            max_length=checks.MOUNTPOINT_MAX,
            pattern=checks.MOUNTPOINT_PATTERN,
            label="mountpoint",
            rule=checks.MOUNTPOINT_RULE,
        ),
    ),
    responses={
        400: "Bad parameter, neither a size nor a source volume, filesystem arguments or "
        "a mountpoint without a filesystem",
        404: NOT_FOUND,
        409: "The disk or the mountpoint is in the template already, or it changed meanwhile",
    },
    returns=MESSAGE,
)
def post_disk(
    ctx: Context, template: str, disk_id: str, pool: str, filesystem_args: str | None, **disk: Any
) -> dict[str, Any]:
    args = (filesystem_args or "").split()
    return templates.add_disk(ctx.zk, template, disk_id, pool, filesystem_args=args, **disk)


@endpoint(
    "DELETE",
    f"{BASE}/storage/<template>/disk/<disk_id>",
    summary="Remove a disk from a storage template",
    tags=TAGS,
    responses={404: "No such template, or it has no such disk", 409: "It changed meanwhile"},
    returns=MESSAGE,
)
def delete_disk(ctx: Context, template: str, disk_id: str) -> dict[str, Any]:
    return templates.remove_disk(ctx.zk, template, disk_id)
