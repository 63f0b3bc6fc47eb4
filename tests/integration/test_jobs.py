"""Tasks (pvc.ops.jobs) on a real Zookeeper without daemons: records, claims, cancelling, the
settling of runners that died, pruning; the /tasks endpoints and `pvc cluster task`, run as
the built dist/pvc against a real API."""

import json
import threading
import time

import pytest

from pvc.errors import ConcurrentChange, Conflict, InvalidInput, NotFound
from pvc.ops import cluster, jobs
from pvc.zk.handler import ZKHandler
from tests.conftest import ZK_SECRET, fails, ok
from tests.integration.test_api import call
from tests.integration.test_node_ops import add_node


def create(zk, kind: str = "flush", node: str = "node1") -> str:
    job_id, values = jobs.creation(kind, {"node": node}, runner=node)
    zk.write(values)
    return job_id


@pytest.fixture
def ready(zk):
    cluster.initialize(zk)
    add_node(zk, "node1")
    return zk


@pytest.fixture
def other(zk_hosts):
    """A second session: a runner whose session can end while its claim is held."""
    handler = ZKHandler(zk_hosts, connect_timeout=10, session_timeout=4, secret=ZK_SECRET).connect()
    yield handler
    handler.close()


def test_a_new_job_is_queued_with_a_sortable_readable_id(ready):
    first = create(ready, "flush")
    second = create(ready, "unflush")
    assert first < second and "-flush-" in first and "-unflush-" in second
    record = jobs.info(ready, first)
    assert (record["state"], record["kind"], record["runner"]) == ("queued", "flush", "node1")
    assert record["args"] == {"node": "node1"} and record["attempts"] == 0
    assert record["progress"] == {"current": 0, "total": 0, "message": "queued"}
    assert record["started"] is None and record["finished"] is None
    assert (record["claimed_by"], record["cancel_requested"]) == (None, False)
    assert [r["id"] for r in jobs.list_jobs(ready)] == [second, first]
    assert [r["id"] for r in jobs.list_jobs(ready, kind="flush")] == [first]
    assert jobs.list_jobs(ready, state="running") == []


def test_unknown_and_malformed_ids(ready):
    with pytest.raises(NotFound, match="task 'nope' does not exist"):
        jobs.info(ready, "nope")
    with pytest.raises(NotFound):
        jobs.cancel(ready, "nope")
    with pytest.raises(InvalidInput, match="invalid task id"):
        jobs.info(ready, "../x")


def test_one_claim_wins(ready, other):
    job_id = create(ready)
    claimed = jobs.claim(ready, job_id, "node1 a")
    assert claimed is not None and claimed[0]["state"] == "running"
    assert claimed[0]["attempts"] == 1 and claimed[0]["started"] is not None
    assert jobs.claim(other, job_id, "node1 b") is None
    assert jobs.info(ready, job_id)["claimed_by"] == "node1 a"


def test_cancel_of_a_queued_job_is_at_once_and_a_claim_then_fails(ready):
    job_id = create(ready)
    answer = jobs.cancel(ready, job_id)
    assert answer == {"message": f"task '{job_id}' cancelled", "task": job_id}
    record = jobs.info(ready, job_id)
    assert record["state"] == "cancelled" and record["finished"] is not None
    assert jobs.claim(ready, job_id, "node1 a") is None


def test_cancel_of_a_running_job_is_a_request_its_runner_sees(ready):
    job_id = create(ready)
    record, version = jobs.claim(ready, job_id, "node1 a")
    assert "its runner stops it" in jobs.cancel(ready, job_id)["message"]
    assert jobs.info(ready, job_id)["cancel_requested"] is True
    assert jobs.info(ready, job_id)["state"] == "running"
    jobs.update(ready, jobs.finished(record, "cancelled"), version, release=True)
    record = jobs.info(ready, job_id)
    assert (record["state"], record["claimed_by"], record["cancel_requested"]) == (
        "cancelled", None, False
    )  # fmt: skip


@pytest.mark.parametrize("state", ["done", "failed", "cancelled"])
def test_cancelling_an_ended_job_is_a_conflict_naming_its_state(ready, state):
    job_id = create(ready)
    record, version = jobs.claim(ready, job_id, "node1 a")
    jobs.update(ready, jobs.finished(record, state), version, release=True)
    with pytest.raises(Conflict, match=f"task '{job_id}' is already {state}; nothing to cancel"):
        jobs.cancel(ready, job_id)


def test_progress_writes_need_the_claim(ready, other):
    job_id = create(ready)
    record, version = jobs.claim(other, job_id, "node1 b")
    record |= {"progress": {"current": 1, "total": 2, "message": "vm1"}}
    version = jobs.update(ready, record, version)
    assert jobs.info(ready, job_id)["progress"]["message"] == "vm1"
    other.close()  # the runner's session ends: its claim goes
    with pytest.raises(ConcurrentChange):
        jobs.update(ready, record, version)


@pytest.mark.parametrize(
    "record_state, claimed, node_state, idempotent, outcome",
    [
        ("running", True, "run", True, None),
        ("running", False, "run", True, "queued"),
        ("running", False, "run", False, "failed"),
        ("running", False, "dead", True, "failed"),
        ("queued", False, "run", True, None),
        ("queued", False, "stop", True, None),  # a stopped node runs it when it is back
        ("queued", False, "fence-failed", True, "failed"),
        ("queued", False, "fenced", False, "failed"),
    ],
)
def test_orphan_outcome(monkeypatch, record_state, claimed, node_state, idempotent, outcome):
    monkeypatch.setitem(jobs.KINDS, "flush", jobs.Kind("flush", idempotent, "domain", ""))
    record = {"state": record_state, "runner": "node2", "kind": "flush", "interrupted": None}
    found = jobs.orphan_outcome(record, claimed, node_state)
    assert (found and found[0]) == outcome
    if found:
        assert "node2" in found[1] and found[2] == "node2"


@pytest.mark.parametrize(
    "record_state, interrupted, node_state, outcome",
    [
        ("running", None, "run", ("queued", "node2")),  # its runner resumes it: the undo
        ("running", None, "dead", None),  # the fence is not done: wait
        ("running", None, "fence-failed", None),
        ("running", None, "fenced", ("queued", "primary")),
        ("queued", "stopped", "fenced", ("queued", "primary")),
        ("queued", None, "fenced", ("failed", "node2")),  # never ran: made nothing
    ],
)
def test_orphan_outcome_of_a_kind_the_primary_undoes(record_state, interrupted, node_state,
                                                    outcome):  # fmt: skip
    record = {"state": record_state, "runner": "node2", "kind": "provision",
              "interrupted": interrupted}  # fmt: skip
    found = jobs.orphan_outcome(record, False, node_state)
    assert (found and (found[0], found[2])) == outcome


def test_a_runner_that_died_hands_an_idempotent_job_back(ready, other):
    job_id = create(ready)
    jobs.claim(other, job_id, "node1 b")
    assert jobs.settle_orphan(ready, job_id, lambda node: "run") is None  # still claimed
    other.close()
    assert jobs.settle_orphan(ready, job_id, lambda node: "run") == "queued"
    record = jobs.info(ready, job_id)
    assert record["state"] == "queued" and "its runner node1 died" in record["progress"]["message"]
    assert jobs.claim(ready, job_id, "node1 c")[0]["attempts"] == 2


def test_a_queued_job_of_a_dead_node_fails_with_the_reason(ready, other):
    job_id = create(ready)
    assert jobs.settle_orphan(ready, job_id, lambda node: "dead") == "failed"
    assert jobs.info(ready, job_id)["error"] == "node node1 is dead: its daemon cannot run the task"
    handed_back = create(ready)
    jobs.claim(other, handed_back, "node1 b")
    other.close()
    assert jobs.settle_orphan(ready, handed_back, lambda node: "run") == "queued"
    assert jobs.settle_orphan(ready, handed_back, lambda node: "fence-failed") == "failed"
    assert jobs.info(ready, handed_back)["error"] == (
        "its runner node1 died while it ran (its Zookeeper session ended), "
        "and node node1 is fence-failed"
    )


def test_a_create_whose_node_is_fenced_is_handed_to_the_primary_to_undo(ready, other):
    """A provision task (undone_by_primary) that ran on a node now dead waits for the node's
    fence, then goes to the primary (whose run removes what it made), not failed as is."""
    job_id, values = jobs.creation("provision", {"name": "vm1"}, runner="node1")
    ready.write(values)
    jobs.claim(other, job_id, "node1 b")
    other.close()
    assert jobs.settle_orphan(ready, job_id, lambda node: "dead") is None  # fence not done
    assert jobs.settle_orphan(ready, job_id, lambda node: "fence-failed") is None
    assert jobs.info(ready, job_id)["state"] == "running"
    assert jobs.settle_orphan(ready, job_id, lambda node: "fenced") == "queued"
    record = jobs.info(ready, job_id)
    assert (record["state"], record["runner"]) == ("queued", jobs.PRIMARY)
    assert record["progress"]["message"] == (
        "its runner node1 died while it ran (its Zookeeper session ended), "
        "and node node1 is fenced: the primary undoes it"
    )
    assert jobs.settle_orphan(ready, job_id, lambda node: "fenced") is None  # the primary's now
    assert jobs.claim(ready, job_id, "node2 c")[0]["attempts"] == 2  # a second run: the undo
    never_ran, values = jobs.creation("provision", {"name": "vm2"}, runner="node1")
    ready.write(values)
    assert jobs.settle_orphan(ready, never_ran, lambda node: "fenced") == "failed"  # made nothing


def test_prune_keeps_the_newest_ended_jobs(ready):
    ended = []
    for _ in range(4):
        job_id = create(ready)
        jobs.cancel(ready, job_id)
        ended.append(job_id)
    waiting = create(ready)
    assert jobs.prune(ready, 2) == 2
    assert {r["id"] for r in jobs.list_jobs(ready)} == {ended[2], ended[3], waiting}
    assert jobs.prune(ready, 2) == 0


# --- the API and the CLI ---------------------------------------------------------------------


@pytest.fixture
def pvc(run_pvc, api_server, ready):
    def run(*args: str, **kwargs):
        return run_pvc("--config", str(api_server.config_path), *args, **kwargs)

    return run


def listed(api_server, query: str = "", count: int = 2) -> list[str]:
    """The ids GET /tasks answers, once the API's mirror shows `count` of them."""
    deadline = time.monotonic() + 10
    while True:
        status, records = call(api_server, "GET", "/tasks" + query)
        assert status == 200
        if len(records) >= count or time.monotonic() > deadline:
            return [r["id"] for r in records]
        time.sleep(0.05)


def shown(api_server, job_id: str) -> dict:
    """GET /tasks/<id>, once the API's mirror shows the task."""
    deadline = time.monotonic() + 10
    while True:
        status, record = call(api_server, "GET", f"/tasks/{job_id}")
        if status == 200 or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


def test_tasks_endpoints_list_info_cancel(pvc, api_server, ready):
    first, second = create(ready), create(ready, "unflush")
    assert listed(api_server) == [second, first]
    assert listed(api_server, "?kind=unflush", 1) == [second]
    assert call(api_server, "GET", "/tasks?state=done")[1] == []
    assert shown(api_server, first)["state"] == "queued"
    status, answer = call(api_server, "DELETE", f"/tasks/{first}")
    assert (status, answer["task"]) == (200, first)
    assert call(api_server, "GET", f"/tasks/{first}")[1]["state"] == "cancelled"


@pytest.mark.parametrize(
    "method, path, status, message",
    [
        ("GET", "/tasks/nope", 404, "task 'nope' does not exist"),
        ("DELETE", "/tasks/nope", 404, "task 'nope' does not exist"),
        ("GET", "/tasks?state=sleeping", 400, "'state' must be one of"),
        ("GET", "/tasks/x?since=1", 404, "task 'x' does not exist"),  # since: ignored
        ("GET", "/tasks/x?wait=99", 400, "'wait' must be at least 0 and at most 30"),
    ],
)
def test_tasks_bad_requests(pvc, api_server, method, path, status, message):
    found, answer = call(api_server, method, path)
    assert found == status and message in answer["message"]


def test_cancelling_an_ended_task_is_409_with_its_state(pvc, api_server, ready):
    job_id = create(ready)
    jobs.cancel(ready, job_id)
    status, answer = call(api_server, "DELETE", f"/tasks/{job_id}")
    assert status == 409 and answer["message"] == (
        f"task '{job_id}' is already cancelled; nothing to cancel"
    )


def test_long_poll_answers_when_the_task_changes(pvc, api_server, ready):
    job_id = create(ready)
    before = shown(api_server, job_id)
    record, version = jobs.claim(ready, job_id, "node1 a")
    progress = {"current": 1, "total": 3, "message": "vm1: moving away"}
    later = threading.Timer(0.5, jobs.update, (ready, record | {"progress": progress}, version))
    later.start()
    started = time.monotonic()
    status, answer = call(api_server, "GET", f"/tasks/{job_id}?wait=8&since={before['updated']}")
    assert status == 200 and answer["state"] == "running"  # the claim: a change since `before`
    status, answer = call(api_server, "GET", f"/tasks/{job_id}?wait=8&since={answer['updated']}")
    assert answer["progress"] == progress
    assert time.monotonic() - started < 8  # woken by the change, not by the end of the wait
    unchanged = call(api_server, "GET", f"/tasks/{job_id}?wait=0.2&since={answer['updated']}")
    assert unchanged[1]["progress"] == progress
    later.join()


def test_openapi_documents_the_task_endpoints(api_server):
    paths = call(api_server, "GET", "/openapi.json", key=None)[1]["paths"]
    assert set(paths["/tasks/{task}"]) == {"get", "delete"}
    assert "409" in paths["/tasks/{task}"]["delete"]["responses"]
    assert "/tasks" in paths


def test_cli_task_list_info_cancel(pvc, ready):
    first, second = create(ready), create(ready, "unflush")
    listed = json.loads(ok(pvc("cluster", "task", "list", "-f", "json")))
    assert [r["id"] for r in listed] == [second, first]
    lines = ok(pvc("cluster", "task", "list", "--kind", "flush")).splitlines()
    assert lines[0].split() == ["ID", "KIND", "RUNNER", "STATE", "PROGRESS", "MESSAGE"]
    assert lines[1].split()[:5] == [first, "flush", "node1", "queued", "0/0"]
    assert ok(pvc("cluster", "task", "list", "--state", "done")).strip() == "no tasks"
    info = json.loads(ok(pvc("cluster", "task", "info", second, "-f", "json")))
    assert (info["id"], info["kind"]) == (second, "unflush")
    pretty = ok(pvc("cluster", "task", "info", second))
    assert "arguments:" in pretty and "node=node1" in pretty
    assert ok(pvc("cluster", "task", "cancel", first)).strip() == f"task '{first}' cancelled"
    line = fails(pvc("cluster", "task", "cancel", first))
    assert line == f"pvc: task '{first}' is already cancelled; nothing to cancel"
    assert fails(pvc("cluster", "task", "info", "nope")) == "pvc: task 'nope' does not exist"
