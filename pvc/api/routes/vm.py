"""VM endpoints: define, change and remove VMs, their state, node, metadata, console and tags.

`<vm>` is a VM's name or UUID. Lists of names (node limit, tags) are comma-separated.
"""

from dataclasses import replace
from typing import Any

from pvc.api.app import Context, Param, endpoint
from pvc.errors import InvalidInput
from pvc.ops import vm as vm_ops

TAGS = ("vm",)
NOT_FOUND = "The VM does not exist, or the cluster is not initialised"
WAIT = "true: answer once the VM got there (or failed), with its record"
LIMIT = Param("limit", str, "Comma-separated nodes the VM may run on (empty: any)")
SELECTOR = Param("selector", str, "How to choose its node: mem, memprov, load, vcpus or vms")
METHOD = Param(
    "migration_method", str, "How to move it between nodes", choices=vm_ops.MIGRATION_METHODS
)
# How long a `wait` may take, in seconds: what involves a graceful shutdown (at most
# timers.vm_shutdown_timeout, 180 s by default) gets longer.
WAIT_SECONDS = 120.0
SHUTDOWN_WAIT_SECONDS = 200.0
# What each state change waits for (wait_for's states) and how long.
STATE_WAITS = {
    "start": (("start",), WAIT_SECONDS),
    "restart": (("start",), SHUTDOWN_WAIT_SECONDS),
    "shutdown": (("stop", "disable"), SHUTDOWN_WAIT_SECONDS),
    "stop": (("stop", "disable"), WAIT_SECONDS),
    "disable": (("stop", "disable"), WAIT_SECONDS),
}
PLAIN_VERBS = {"restart": vm_ops.restart, "stop": vm_ops.stop, "disable": vm_ops.disable}
# A move or migration is over when the VM is in any state but migrate (start: running there).
SETTLED = tuple(state for state in vm_ops.STATES if state != "migrate")


def _names(text: str | None) -> list[str] | None:
    """A comma-separated list ("" is the empty list); None stays None (not given)."""
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def _policy(ctx: Context) -> vm_ops.Policy:
    return vm_ops.Policy.from_config(ctx.config)


def _fields(record: dict[str, Any], *names: str) -> dict[str, Any]:
    return {"name": record["name"], **{name: record[name] for name in names}}


def _waited(
    ctx: Context, vm: str, answer: dict[str, Any], states: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """The VM's record once it reached `states` (or failed), with the verb's message."""
    return vm_ops.wait_for(ctx.zk, vm, states, timeout) | {"message": answer["message"]}


@endpoint(
    "GET",
    "/vm",
    summary="All VMs, sorted by name, optionally filtered",
    tags=TAGS,
    params=(
        Param("node", str, "Only VMs assigned to this node"),
        Param("state", str, "Only VMs in this state", choices=vm_ops.STATES),
        Param("match", str, "Only VMs whose name matches: a glob (*, ?, [...]) or a regex"),
    ),
    responses={400: "Bad parameter or name pattern", 404: "The cluster is not initialised"},
)
def get_vms(
    ctx: Context, node: str | None, state: str | None, match: str | None
) -> list[dict[str, Any]]:
    return vm_ops.list_vms(ctx.zk, node, state, match)


@endpoint(
    "POST",
    "/vm",
    summary="Define a VM (stopped) from its libvirt domain XML",
    tags=TAGS,
    params=(
        Param("xml", str, "The libvirt domain XML (name, uuid, memory, vcpu)", required=True),
        Param("node", str, "The node to assign it to (default: the selector's choice)"),
        LIMIT,
        SELECTOR,
        Param("autostart", bool, "Start it when its node becomes ready", default=False),
        replace(METHOD, default="live"),
        Param("tags", str, "Comma-separated tags"),
    ),
    responses={
        400: "Bad parameter, XML that does not parse or lacks name, uuid, memory or vcpu, "
        "a node outside the limit, or no node in run and ready state",
        404: "The node does not exist, or the cluster is not initialised",
        409: "A VM with this name or UUID exists",
    },
)
def post_vm(
    ctx: Context,
    xml: str,
    node: str | None,
    limit: str | None,
    selector: str | None,
    autostart: bool,
    migration_method: str,
    tags: str | None,
) -> dict[str, Any]:
    return vm_ops.define(
        ctx.zk,
        _policy(ctx),
        xml,
        node=node,
        limit=_names(limit),
        selector=selector,
        autostart=autostart,
        migration_method=migration_method,
        tags=_names(tags),
    )


@endpoint(
    "GET",
    "/vm/<vm>",
    summary="One VM: state, node, placement settings, resources, tags, what runs where",
    tags=TAGS,
    responses={404: NOT_FOUND},
)
def get_vm(ctx: Context, vm: str) -> dict[str, Any]:
    return vm_ops.info(ctx.zk, vm)


@endpoint(
    "PUT",
    "/vm/<vm>",
    summary="Replace a VM's XML (same UUID; another name renames it)",
    tags=TAGS,
    params=(
        Param("xml", str, "The new libvirt domain XML", required=True),
        Param("restart", bool, "Restart the VM if it runs, to apply the XML", default=False),
    ),
    responses={
        400: "Bad XML, or a UUID that is not the VM's",
        404: NOT_FOUND,
        409: "The new name is taken, or the VM changed meanwhile",
    },
)
def put_vm(ctx: Context, vm: str, xml: str, restart: bool) -> dict[str, Any]:
    return vm_ops.modify(ctx.zk, vm, xml, restart)


@endpoint(
    "DELETE",
    "/vm/<vm>",
    summary="Remove a VM's definition (a running VM only with force: its node destroys it)",
    tags=TAGS,
    params=(Param("force", bool, "Remove it even if it runs", default=False),),
    responses={400: "Bad parameter", 404: NOT_FOUND, 409: "The VM runs (and force not set)"},
)
def delete_vm(ctx: Context, vm: str, force: bool) -> dict[str, Any]:
    return vm_ops.undefine(ctx.zk, vm, force)


@endpoint(
    "GET",
    "/vm/<vm>/xml",
    summary="A VM's libvirt domain XML",
    tags=TAGS,
    responses={404: NOT_FOUND},
)
def get_xml(ctx: Context, vm: str) -> dict[str, Any]:
    return {"name": vm, "xml": vm_ops.dump(ctx.zk, vm)}


@endpoint(
    "GET",
    "/vm/<vm>/meta",
    summary="A VM's placement settings: node limit, selector, autostart, migration method",
    tags=TAGS,
    responses={404: NOT_FOUND},
)
def get_meta(ctx: Context, vm: str) -> dict[str, Any]:
    return _fields(
        vm_ops.info(ctx.zk, vm),
        "node_limit",
        "node_selector",
        "node_autostart",
        "migration_method",
    )


@endpoint(
    "POST",
    "/vm/<vm>/meta",
    summary="Change a VM's placement settings (only those given)",
    tags=TAGS,
    params=(
        Param("limit", str, "Comma-separated nodes the VM may run on; empty: any"),
        Param("selector", str, "How to choose its node: mem, memprov, load, vcpus or vms"),
        Param("autostart", bool, "Start it when its node becomes ready"),
        Param(
            "migration_method",
            str,
            "How to move it between nodes",
            choices=vm_ops.MIGRATION_METHODS,
        ),
    ),
    responses={400: "Bad parameter, or none given", 404: NOT_FOUND},
)
def post_meta(
    ctx: Context,
    vm: str,
    limit: str | None,
    selector: str | None,
    autostart: bool | None,
    migration_method: str | None,
) -> dict[str, Any]:
    return vm_ops.set_meta(
        ctx.zk,
        vm,
        limit=_names(limit),
        selector=selector,
        autostart=autostart,
        migration_method=migration_method,
    )


@endpoint(
    "GET",
    "/vm/<vm>/state",
    summary="A VM's state: start, restart, shutdown, stop, disable, migrate or fail",
    tags=TAGS,
    responses={404: NOT_FOUND},
)
def get_state(ctx: Context, vm: str) -> dict[str, Any]:
    return _fields(vm_ops.info(ctx.zk, vm), "state", "failed_reason", "observed")


@endpoint(
    "POST",
    "/vm/<vm>/state",
    summary="Start, restart, shut down, stop (force off) or disable a VM",
    tags=TAGS,
    params=(
        Param("state", str, "The state to go to", required=True, choices=tuple(STATE_WAITS)),
        Param(
            "force",
            bool,
            "start: start a disabled VM; shutdown: force it off if the guest does not shut "
            "down in time",
            default=False,
        ),
        Param("wait", bool, WAIT, default=False),
    ),
    responses={
        400: "Bad parameter",
        404: NOT_FOUND,
        409: "Not possible in the VM's state (e.g. a disabled VM without force), its node "
        "would over-commit memory, or the wait timed out",
    },
)
def post_state(ctx: Context, vm: str, state: str, force: bool, wait: bool) -> dict[str, Any]:
    if force and state not in ("start", "shutdown"):
        raise InvalidInput("parameter 'force' applies only to states start and shutdown")
    if state == "start":
        answer = vm_ops.start(ctx.zk, _policy(ctx), vm, force)
    elif state == "shutdown":
        answer = vm_ops.shutdown(ctx.zk, vm, force)
    else:
        answer = PLAIN_VERBS[state](ctx.zk, vm)
    return _waited(ctx, vm, answer, *STATE_WAITS[state]) if wait else answer


@endpoint(
    "GET",
    "/vm/<vm>/node",
    summary="A VM's node and, if migrated, the node it returns to",
    tags=TAGS,
    responses={404: NOT_FOUND},
)
def get_node(ctx: Context, vm: str) -> dict[str, Any]:
    return _fields(vm_ops.info(ctx.zk, vm), "node", "lastnode", "observed")


@endpoint(
    "POST",
    "/vm/<vm>/node",
    summary="Move a VM: migrate (temporarily), unmigrate (back) or move (for good)",
    tags=TAGS,
    params=(
        Param("action", str, "What to do", required=True, choices=("migrate", "unmigrate", "move")),
        Param("node", str, "migrate, move: the target node (default: the selector's choice)"),
        Param("force", bool, "migrate: migrate an already migrated VM again", default=False),
        Param("wait", bool, WAIT, default=False),
    ),
    responses={
        400: "Bad parameter, a node outside the VM's limit or not in run and ready state, "
        "no node to go to, or (unmigrate) a VM that is not migrated",
        404: "The VM or node does not exist, or the cluster is not initialised",
        409: "Already migrated (migrate without force), the target would over-commit memory, "
        "the VM changed meanwhile, or the wait timed out",
    },
)
def post_node(
    ctx: Context, vm: str, action: str, node: str | None, force: bool, wait: bool
) -> dict[str, Any]:
    if force and action != "migrate":
        raise InvalidInput("parameter 'force' applies only to action migrate")
    if action == "migrate":
        answer = vm_ops.migrate(ctx.zk, _policy(ctx), vm, node, force)
    elif action == "move":
        answer = vm_ops.move(ctx.zk, _policy(ctx), vm, node)
    else:
        if node:
            raise InvalidInput(
                "parameter 'node' does not apply to unmigrate: it returns to lastnode"
            )
        answer = vm_ops.unmigrate(ctx.zk, _policy(ctx), vm)
    return _waited(ctx, vm, answer, SETTLED, SHUTDOWN_WAIT_SECONDS) if wait else answer


@endpoint(
    "POST",
    "/vm/<vm>/rename",
    summary="Rename a stopped VM (its XML's name too)",
    tags=TAGS,
    params=(Param("new_name", str, "The new name", required=True),),
    responses={
        400: "Bad parameter or name",
        404: NOT_FOUND,
        409: "The VM is not stopped, or the name is taken",
    },
)
def post_rename(ctx: Context, vm: str, new_name: str) -> dict[str, Any]:
    return vm_ops.rename(ctx.zk, vm, new_name)


@endpoint(
    "GET",
    "/vm/<vm>/console",
    summary="The last lines of a VM's serial console log",
    tags=TAGS,
    params=(Param("lines", int, "How many lines", default=100),),
    responses={400: "Bad parameter", 404: NOT_FOUND},
)
def get_console(ctx: Context, vm: str, lines: int) -> dict[str, Any]:
    return vm_ops.console_log(ctx.zk, vm, lines)


@endpoint(
    "GET",
    "/vm/<vm>/tags",
    summary="A VM's tags",
    tags=TAGS,
    responses={404: NOT_FOUND},
)
def get_tags(ctx: Context, vm: str) -> dict[str, Any]:
    return _fields(vm_ops.info(ctx.zk, vm), "tags")


@endpoint(
    "POST",
    "/vm/<vm>/tags",
    summary="Add and remove a VM's tags",
    tags=TAGS,
    params=(
        Param("add", str, "Comma-separated tags to add"),
        Param("remove", str, "Comma-separated tags to remove"),
    ),
    responses={400: "Bad parameter or tag", 404: NOT_FOUND, 409: "The tags changed meanwhile"},
)
def post_tags(ctx: Context, vm: str, add: str | None, remove: str | None) -> dict[str, Any]:
    return vm_ops.set_tags(ctx.zk, vm, _names(add) or [], _names(remove) or [])
