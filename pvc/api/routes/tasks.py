"""Task endpoints: the jobs the cluster runs (flush, unflush, ...), their progress, cancelling.

`GET /tasks/<task>?wait=SECONDS` is a long poll: it answers once the task changed since the
record the client has (`since`: that record's `updated`; by default, as it is at the request)
or has ended, and at the latest after SECONDS (at most MAX_WAIT_SECONDS).
"""

from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import listing, record
from pvc.api.params import Param
from pvc.ops import jobs

TAGS = ("task",)
NOT_FOUND = (
    "The task does not exist (it may have been removed: only the newest ended ones are kept)"
)
MAX_WAIT_SECONDS = 30.0
TASK = record("id", "kind", "state")


@endpoint(
    "GET",
    "/tasks",
    summary="All tasks, newest first",
    tags=TAGS,
    params=(
        Param("kind", str, "Only tasks of this kind", choices=tuple(jobs.KINDS)),
        Param("state", str, "Only tasks in this state", choices=jobs.STATES),
    ),
    responses={400: "Bad parameter"},
    returns=listing(TASK),
)
def get_tasks(ctx: Context, kind: str | None, state: str | None) -> list[dict[str, Any]]:
    return jobs.list_jobs(ctx.zk, kind, state)


@endpoint(
    "GET",
    "/tasks/<task>",
    summary="One task: its state, progress, timestamps, result or error",
    tags=TAGS,
    params=(
        Param(
            "wait",
            float,
            "Answer once the task changes or ends, within this many seconds",
            minimum=0,
            maximum=MAX_WAIT_SECONDS,
        ),
        Param(
            "since",
            float,
            "With wait: the 'updated' of the record the client already has (ignored without wait)",
            minimum=0,
        ),
    ),
    responses={400: "Bad parameter or task id", 404: NOT_FOUND},
    returns=TASK,
)
def get_task(ctx: Context, task: str, wait: float | None, since: float | None) -> dict[str, Any]:
    if wait is None:  # since applies only with wait: ignored
        return jobs.info(ctx.zk, task)
    return jobs.wait_for_change(ctx.zk, task, since, wait)


@endpoint(
    "DELETE",
    "/tasks/<task>",
    summary="Cancel a task: a queued one at once, a running one after its current step",
    tags=TAGS,
    responses={
        400: "Bad task id",
        404: NOT_FOUND,
        409: "The task has already ended (the message names its state)",
    },
    returns=record("message", "task"),
)
def delete_task(ctx: Context, task: str) -> dict[str, Any]:
    return jobs.cancel(ctx.zk, task)
