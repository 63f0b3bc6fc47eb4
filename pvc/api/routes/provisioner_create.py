"""`POST /provisioner/create`: build a VM from a profile (pvc.ops.provision). It answers 202
with the task a node's daemon runs; the task is followed and cancelled with /tasks."""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import record
from pvc.api.params import Param, name_param
from pvc.ops import provision, provisioner_records

ARG_MAX_LENGTH = provisioner_records.ARGUMENTS_MAX * (provisioner_records.ARGUMENT_MAX + 65)


@endpoint(
    "POST",
    "/provisioner/create",
    summary="Build a VM from a provisioner profile: a task (202 with its id)",
    tags=("provisioner",),
    params=(
        name_param("name", "The new VM's name", "VM name", required=True),
        name_param("profile", "The profile to build it from", "profile name", required=True),
        Param(
            "define_only",
            bool,
            "Only define the VM and make its volumes (no install script, not started)",
            default=False,
        ),
        Param("start", bool, "Start the VM once it is built", default=True),
        Param(
            "arg",
            str,
            "Install script arguments: key=value, one per line (they override the profile's)",
            max_length=ARG_MAX_LENGTH,
        ),
        name_param(
            "runner", "The node whose daemon builds it (default: the primary)", "node name"
        ),  # fmt: skip
    ),
    responses={
        400: "Bad parameter or argument, or a profile that cannot build a VM",
        404: "No such profile, or a record, pool, volume, network or node it names",
        409: "The name is taken or being provisioned, a MAC is in use, a pool lacks room, or "
        "the runner cannot run it",
        503: "Ceph does not answer",
    },
    returns=record("message", "task"),
)
def post_create(
    ctx: Context,
    name: str,
    profile: str,
    define_only: bool,
    start: bool,
    arg: str | None,
    runner: str | None,
) -> tuple[int, dict[str, Any]]:
    arguments = provisioner_records.parse_arguments(
        [line for line in (arg or "").splitlines() if line]
    )
    answer = provision.create(
        ctx.zk, ctx.config, name, profile, define_only=define_only, start=start,
        arguments=arguments, runner=runner,
    )  # fmt: skip
    return 202, answer
