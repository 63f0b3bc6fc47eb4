"""VM endpoints: define, change and remove VMs, their state, node, metadata, console and tags.

`<vm>` is a VM's name or UUID; answers name the VM by its `name` and `uuid`. Lists of names
(node limit, tags) are comma-separated.

A state change or move with `wait` answers 200 with the VM's record once it got there (or
failed: see its state and failed_reason), or 202 Accepted with its record as it is now if the
wait ran out first, or if too many requests wait already (pvc.api.waits): the change was made
and goes on.
"""

from dataclasses import replace
from typing import Any

from pvc.api import waits
from pvc.api.app import Context, Encoded, endpoint
from pvc.api.openapi import listing, record
from pvc.api.params import Param, name_list_param, name_param
from pvc.limits import CONSOLE_LINES_MAX, NODE_LIMIT_MAX, PATTERN_MAX, TAGS_MAX, XML_MAX
from pvc.ops import placement, vm_locks, vm_move, vm_remove, vm_state
from pvc.ops import vm as vm_ops
from pvc.ops.vm_goals import GOALS

TAGS = ("vm",)
VM = record("name", "uuid")
NOT_FOUND = "The VM does not exist, or the cluster is not initialised"
WAIT = (
    "true: answer once the VM got there (or failed), with its record; 202 with its record if "
    "the wait runs out first"
)
LIMIT = name_list_param(
    "limit", "The nodes the VM may run on (empty: any)", "node limit", NODE_LIMIT_MAX
)
SELECTOR = Param(
    "selector",
    str,
    "How to choose its node: mem, memprov, load, vcpus or vms; default (or empty): the "
    "cluster's vm.default_selector",
    choices=("", vm_ops.DEFAULT_SELECTOR, *placement.SELECTORS),
)
XML = Param(
    "xml",
    str,
    f"The libvirt domain XML (name, uuid, memory, vcpu), at most {XML_MAX} bytes of UTF-8",
    required=True,
    max_bytes=XML_MAX,
)
METHOD = Param(
    "migration_method", str, "How to move it between nodes", choices=vm_ops.MIGRATION_METHODS
)
# How long a `wait` may take, in seconds: what involves a graceful shutdown (at most
# timers.vm_shutdown_timeout, 180 s by default) gets longer.
WAIT_SECONDS = 120.0
SHUTDOWN_WAIT_SECONDS = 200.0
MAX_WAIT_SECONDS = 3600.0
TIMEOUT = Param(
    "timeout",
    float,
    "With wait: the most seconds to wait (default 120; 200 for restart, shutdown and moves; "
    "ignored without wait)",
    minimum=0,
    exclusive_minimum=True,
    maximum=MAX_WAIT_SECONDS,
)
STILL_GOING = (
    "With wait: the wait ran out first, or too many requests wait already; the VM's record "
    "now (the change goes on)"
)
# How long each state change waits by default, and its goal in words (its states: GOALS).
STATE_WAITS = {
    "start": (WAIT_SECONDS, "start"),
    "restart": (SHUTDOWN_WAIT_SECONDS, "restart"),
    "shutdown": (SHUTDOWN_WAIT_SECONDS, "shut down"),
    "stop": (WAIT_SECONDS, "stop"),
    "disable": (WAIT_SECONDS, "stop"),
}
PLAIN_VERBS = {"restart": vm_state.restart, "stop": vm_state.stop, "disable": vm_state.disable}


def _names(text: str | None) -> list[str] | None:
    """A comma-separated list ("" is the empty list); None stays None (not given)."""
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def _policy(ctx: Context) -> placement.Policy:
    return placement.Policy.from_config(ctx.config)


def _fields(record: dict[str, Any], *names: str) -> dict[str, Any]:
    return {"name": record["name"], **{name: record[name] for name in names}}


def _timeout(wait: bool, timeout: float | None, default: float) -> float:
    """How long a wait may take: `timeout` or the verb's default (without wait, neither: a
    parameter that does not apply is ignored, as the OpenAPI document says)."""
    return default if timeout is None or not wait else timeout


def _waited(
    ctx: Context, answer: dict[str, Any], states: tuple[str, ...], timeout: float, goal: str
) -> dict[str, Any] | tuple[int, dict[str, Any]]:
    """The VM's record once it reached `states` (or failed), with the verb's message; or 202
    with its record as it is now and a message saying it is still on its way (also at once
    when too many requests wait already: pvc.api.waits)."""
    with waits.wait_slot() as waiting:
        if not waiting:
            message = (
                f"{answer['message']}; not waiting: {waits.MAX_WAITS} requests are waiting "
                "already (follow the VM with GET /vm/<vm>)"
            )
            return 202, vm_ops.info(ctx.zk, answer["uuid"]) | {"message": message}
        try:
            record = vm_state.wait_for(ctx.zk, answer["uuid"], states, timeout, goal)
        except vm_state.StillGoing as going:
            return 202, going.record | {"message": going.message}
    return record | {"message": answer["message"]}


@endpoint(
    "GET",
    "/vm",
    summary="All VMs, sorted by name, optionally filtered",
    tags=TAGS,
    params=(
        name_param("node", "Only VMs assigned to this node", "node name"),
        Param("state", str, "Only VMs in this state", choices=vm_ops.STATES),
        Param(
            "match",
            str,
            "Only VMs whose whole name matches this shell glob (*, ?, [abc], [!abc]; any other "
            "character, '.' too, stands for itself); with regex, a regular expression",
            max_length=PATTERN_MAX,
        ),
        Param(
            "regex",
            bool,
            "match is a Python regular expression, searched anywhere in the name (anchor it "
            "with ^ and $); ignored without match",
            default=False,
        ),
    ),
    responses={
        400: "Bad parameter, a bad regular expression, or regex without match",
        404: "The cluster is not initialised",
    },
    returns=listing(VM),
)
def get_vms(
    ctx: Context, node: str | None, state: str | None, match: str | None, regex: bool
) -> Encoded:
    return Encoded(vm_ops.list_matching_json(ctx.zk, node, state, match, regex))


@endpoint(
    "POST",
    "/vm",
    summary="Define a VM (stopped) from its libvirt domain XML",
    tags=TAGS,
    params=(
        XML,
        name_param(
            "node", "The node to assign it to (default: the selector's choice)", "node name"
        ),
        LIMIT,
        SELECTOR,
        Param("autostart", bool, "Start it when its node becomes ready", default=False),
        replace(METHOD, default="live"),
        name_list_param("tags", "The VM's tags", "tags", TAGS_MAX, names=False),
    ),
    responses={
        400: "Bad parameter, XML that does not parse or lacks name, uuid, memory or vcpu, "
        "an RBD disk source that is not POOL/VOLUME, a node outside the limit, or no node in "
        "run and ready state",
        404: "The node does not exist, a volume of its RBD disks does not (each named), or "
        "the cluster is not initialised",
        409: "A VM with this name or UUID exists",
    },
    returns=VM,
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
    returns=VM,
)
def get_vm(ctx: Context, vm: str) -> dict[str, Any]:
    return vm_ops.info(ctx.zk, vm)


@endpoint(
    "PUT",
    "/vm/<vm>",
    summary="Replace a VM's XML (same UUID and name: rename it with POST /vm/<vm>/rename)",
    tags=TAGS,
    params=(
        replace(XML, doc=f"The new libvirt domain XML, at most {XML_MAX} bytes of UTF-8"),
        Param(
            "restart",
            bool,
            "Restart the VM if it runs, to apply the XML (refused, as a start is, if its "
            "node's memory would be over-committed)",
            default=False,
        ),
    ),
    responses={
        400: "Bad XML (an RBD disk source that is not POOL/VOLUME too), or a UUID that is not "
        "the VM's",
        404: NOT_FOUND + "; or a volume of its RBD disks does not exist (each named)",
        409: "The XML has another name (use rename), the restart would over-commit its "
        "node's memory, or the VM changed meanwhile",
    },
    returns=VM,
)
def put_vm(ctx: Context, vm: str, xml: str, restart: bool) -> dict[str, Any]:
    return vm_ops.modify(ctx.zk, _policy(ctx), vm, xml, restart)


@endpoint(
    "DELETE",
    "/vm/<vm>",
    summary="Remove a VM's definition (a running VM only with force: its node destroys it), "
    "with delete_disks also its RBD volumes",
    tags=TAGS,
    params=(
        Param("force", bool, "Remove it even if it runs (not with delete_disks)", default=False),
        Param(
            "delete_disks",
            bool,
            "Also remove its RBD volumes and their snapshots (the VM must be stopped; a volume "
            "another VM uses is refused)",
            default=False,
        ),
    ),
    responses={
        400: "Bad parameter",
        404: NOT_FOUND,
        409: "The VM runs (and force not set, or delete_disks set), or another VM uses one "
        "of its volumes",
        503: "delete_disks, and Ceph is not configured or does not answer",
    },
    returns=VM,
)
def delete_vm(ctx: Context, vm: str, force: bool, delete_disks: bool) -> dict[str, Any]:
    if delete_disks:
        return vm_remove.remove_with_disks(ctx.zk, ctx.config, vm)
    return vm_ops.undefine(ctx.zk, vm, force)


@endpoint(
    "GET",
    "/vm/<vm>/xml",
    summary="A VM's libvirt domain XML, with its name and UUID",
    tags=TAGS,
    responses={404: NOT_FOUND},
    returns=VM,
)
def get_xml(ctx: Context, vm: str) -> dict[str, Any]:
    return vm_ops.dump(ctx.zk, vm)


@endpoint(
    "GET",
    "/vm/<vm>/meta",
    summary="A VM's placement settings: node limit, selector, autostart, migration method",
    tags=TAGS,
    responses={404: NOT_FOUND},
    returns=VM,
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
        LIMIT,
        SELECTOR,
        Param("autostart", bool, "Start it when its node becomes ready"),
        Param(
            "migration_method",
            str,
            "How to move it between nodes",
            choices=vm_ops.MIGRATION_METHODS,
        ),
    ),
    responses={400: "Bad parameter, or none given", 404: NOT_FOUND},
    returns=VM,
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
    returns=VM,
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
            "down in time (other states ignore it)",
            default=False,
        ),
        Param("wait", bool, WAIT, default=False),
        TIMEOUT,
    ),
    responses={
        202: STILL_GOING,
        400: "Bad parameter",
        404: NOT_FOUND,
        409: "Not possible in the VM's state (e.g. a disabled VM without force, a restart of a "
        "stopped VM), or its node would over-commit memory. A VM already there (a start of a "
        "running VM, a stop of a stopped or disabled one) is left alone: 200 saying so",
    },
    returns=VM,
)
def post_state(
    ctx: Context, vm: str, state: str, force: bool, wait: bool, timeout: float | None
) -> dict[str, Any] | tuple[int, dict[str, Any]]:
    force = force and state in ("start", "shutdown")  # ignored elsewhere
    default, goal = STATE_WAITS[state]
    states = GOALS[state].states
    seconds = _timeout(wait, timeout, default)
    if state == "start":
        answer = vm_state.start(ctx.zk, _policy(ctx), vm, force)
    elif state == "shutdown":
        answer = vm_state.shutdown(ctx.zk, vm, force)
    else:
        answer = PLAIN_VERBS[state](ctx.zk, vm)
    return _waited(ctx, answer, states, seconds, goal) if wait else answer


@endpoint(
    "GET",
    "/vm/<vm>/node",
    summary="A VM's node and, if migrated, the node it returns to",
    tags=TAGS,
    responses={404: NOT_FOUND},
    returns=VM,
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
        name_param(
            "node",
            "migrate, move: the target node (default: the selector's choice; unmigrate "
            "ignores it: the VM returns to its lastnode)",
            "node name",
        ),
        Param(
            "force",
            bool,
            "migrate: migrate an already migrated VM again (other actions ignore it)",
            default=False,
        ),
        Param("wait", bool, WAIT, default=False),
        TIMEOUT,
    ),
    responses={
        202: STILL_GOING,
        400: "Bad parameter, a node outside the VM's limit or not in run and ready state, "
        "no node to go to, or (unmigrate) a VM that is not migrated",
        404: "The VM or node does not exist, or the cluster is not initialised",
        409: "Already migrated (migrate without force), the target would over-commit memory, "
        "or the VM changed meanwhile",
    },
    returns=VM,
)
def post_node(
    ctx: Context,
    vm: str,
    action: str,
    node: str | None,
    force: bool,
    wait: bool,
    timeout: float | None,
) -> dict[str, Any] | tuple[int, dict[str, Any]]:
    seconds = _timeout(wait, timeout, SHUTDOWN_WAIT_SECONDS)
    if action == "migrate":
        answer = vm_move.migrate(ctx.zk, _policy(ctx), vm, node, force)  # force: migrate only
    elif action == "move":
        answer = vm_move.move(ctx.zk, _policy(ctx), vm, node)
    else:  # back to lastnode: node is ignored
        answer = vm_move.unmigrate(ctx.zk, _policy(ctx), vm)
    goal = f"move to {answer['node']}"
    return _waited(ctx, answer, GOALS[action].states, seconds, goal) if wait else answer


@endpoint(
    "POST",
    "/vm/<vm>/rename",
    summary="Rename a stopped VM (its XML's name too)",
    tags=TAGS,
    params=(
        name_param("new_name", "The new name, not shaped like a UUID", "VM name", required=True),
    ),
    responses={
        400: "Bad parameter or name",
        404: NOT_FOUND,
        409: "The VM is not stopped, or the name is taken",
    },
    returns=VM,
)
def post_rename(ctx: Context, vm: str, new_name: str) -> dict[str, Any]:
    return vm_ops.rename(ctx.zk, vm, new_name)


@endpoint(
    "GET",
    "/vm/<vm>/console",
    summary="The last lines of a VM's serial console log",
    tags=TAGS,
    params=(
        Param(
            "lines",
            int,
            "How many lines, from the end",
            default=100,
            minimum=1,
            maximum=CONSOLE_LINES_MAX,
        ),
    ),
    responses={400: "Bad parameter", 404: NOT_FOUND},
    returns=VM,
)
def get_console(ctx: Context, vm: str, lines: int) -> dict[str, Any]:
    return vm_ops.console_log(ctx.zk, vm, lines)


@endpoint(
    "GET",
    "/vm/<vm>/tags",
    summary="A VM's tags",
    tags=TAGS,
    responses={404: NOT_FOUND},
    returns=VM,
)
def get_tags(ctx: Context, vm: str) -> dict[str, Any]:
    return _fields(vm_ops.info(ctx.zk, vm), "tags")


@endpoint(
    "POST",
    "/vm/<vm>/tags",
    summary="Add and remove a VM's tags",
    tags=TAGS,
    params=(
        name_list_param("add", "Tags to add", "tags", TAGS_MAX, names=False),
        name_list_param("remove", "Tags to remove", "tags", TAGS_MAX, names=False),
    ),
    responses={400: "Bad parameter or tag", 404: NOT_FOUND, 409: "The tags changed meanwhile"},
    returns=VM,
)
def post_tags(ctx: Context, vm: str, add: str | None, remove: str | None) -> dict[str, Any]:
    return vm_ops.set_tags(ctx.zk, vm, _names(add) or [], _names(remove) or [])


@endpoint(
    "POST",
    "/vm/<vm>/locks",
    summary="Break the RBD locks on a VM's volumes (the VM must run nowhere)",
    tags=TAGS,
    responses={
        404: NOT_FOUND,
        409: "The VM runs, or is meant to run, on a node",
        503: "Ceph is not configured on the API's node, or does not answer",
    },
    returns=VM,
)
def post_locks(ctx: Context, vm: str) -> dict[str, Any]:
    return vm_locks.flush_locks(ctx.zk, ctx.config, vm)
