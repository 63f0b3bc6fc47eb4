"""`pvc node list|info|primary|secondary`, run as the built dist/pvc against a real API and
Zookeeper, with node records written as the node daemons would; also the node endpoints."""

import json
import threading
import time

import pytest

from pvc.ops import cluster, jobs
from tests.conftest import fails, ok
from tests.integration.test_api import call
from tests.integration.test_node_ops import PRIMARY, STATIC, STATS, add_node


@pytest.fixture
def pvc(run_pvc, api_server, zk):
    """dist/pvc on the test API, whose cluster has node1 (primary, with hardware and stats),
    node2 (a live secondary) and hv1 (a live hypervisor)."""
    cluster.initialize(zk)
    add_node(zk, "node1", router="primary", static=STATIC, stats=STATS, version="1.2.3",
             keepalive=time.time())  # fmt: skip
    add_node(zk, "node2")
    add_node(zk, "hv1", mode="hypervisor")
    zk.write({PRIMARY: "node1"})

    def run(*args: str, **kwargs):
        return run_pvc("--config", str(api_server.config_path), *args, **kwargs)

    return run


def nodes(pvc, *args: str) -> list[dict]:
    return json.loads(ok(pvc("node", "list", "-f", "json", *args)))


def test_list_json_is_the_api_document(pvc, api_server):
    listed = nodes(pvc)
    assert [node["name"] for node in listed] == ["hv1", "node1", "node2"]
    node1 = listed[1]
    assert (node1["coordinator_state"], node1["alive"], node1["stats"]) == ("primary", True, STATS)
    status, document = call(api_server, "GET", "/node")
    assert status == 200
    assert [n | {"keepalive_age": 0} for n in document] == [
        n | {"keepalive_age": 0} for n in listed
    ]
    assert [node["name"] for node in nodes(pvc, "node")] == ["node1", "node2"]
    assert nodes(pvc, "nothing") == []


def test_list_pretty(pvc):
    lines = ok(pvc("node", "list")).splitlines()
    assert lines[0].split()[:4] == ["NAME", "MODE", "DAEMON", "COORDINATOR"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"hv1", "node1", "node2"}
    assert rows["node1"][1:6] == ["coordinator", "run", "primary", "ready", "yes"]
    assert rows["node1"][-4:] == ["1.2.3", "0.42", "12000/32000", "2/3"]
    assert rows["hv1"][1:4] == ["hypervisor", "run", "client"]
    assert ok(pvc("node", "list", "nothing")).strip() == "no nodes"


def test_info_json_and_pretty(pvc):
    info = json.loads(ok(pvc("node", "info", "node1", "-f", "json")))
    assert (info["name"], info["version"], info["static"]) == ("node1", "1.2.3", STATIC)
    assert 0 <= info["keepalive_age"] < 30
    assert json.loads(ok(pvc("node", "info", "node1", "-f", "json-pretty")))["stats"] == STATS
    pretty = dict(line.split(":", 1) for line in ok(pvc("node", "info", "node1")).splitlines())
    pretty = {label: value.strip() for label, value in pretty.items()}
    assert pretty["coordinator state"] == "primary"
    assert pretty["cpu cores"] == "8" and pretty["kernel"] == STATIC["kernel"]
    assert pretty["memory used"] == "12000 MiB" and pretty["vms running/total"] == "2/3"
    assert pretty["last keepalive"].endswith(" s ago")
    bare = ok(pvc("node", "info", "node2")).splitlines()
    assert [line.split()[-1] for line in bare if line.startswith("kernel:")] == ["-"]


@pytest.mark.parametrize(
    "args",
    [
        ("info", "ghost"),
        ("primary", "ghost"),
        ("secondary", "ghost", "--force"),
    ],
)
def test_unknown_node_is_one_line_exit_1(pvc, args):
    assert fails(pvc("node", *args)) == "pvc: node 'ghost' does not exist"


def test_invalid_name_is_one_line_exit_1(pvc):
    assert fails(pvc("node", "info", "a b")).startswith("pvc: invalid node name 'a b'")


def test_hypervisor_cannot_be_primary_or_secondary(pvc, zk):
    message = "pvc: node 'hv1' is a hypervisor, not a coordinator"
    assert fails(pvc("node", "primary", "hv1")) == message
    assert fails(pvc("node", "secondary", "hv1")) == message
    assert zk.read(PRIMARY) == "node1"


def test_primary_moves_the_role(pvc, zk):
    assert ok(pvc("node", "primary", "node2")).strip() == "primary role moving to 'node2'"
    assert zk.read(PRIMARY) == "node2"
    assert ok(pvc("node", "primary", "node2")).strip() == "node 'node2' is already primary"


def test_secondary_of_a_node_not_primary_fails(pvc):
    line = fails(pvc("node", "secondary", "node2"))
    assert line == "pvc: node 'node2' is not primary (primary: 'node1')"


def test_secondary_is_refused_without_force_when_no_one_can_take_over(pvc, zk):
    zk.write({("node.state.daemon", "node2"): "stop"})
    line = fails(pvc("node", "secondary", "node1"))
    assert line.startswith("pvc: no other coordinator is alive to take over; use force")
    assert zk.read(PRIMARY) == "node1"
    assert "no primary" in ok(pvc("node", "secondary", "node1", "--force"))
    assert zk.read(PRIMARY) == "none"


def act_as_daemons(zk, old: str, new: str) -> threading.Thread:
    """Once the primary key names `new` (or "none", then elects `new`), the two daemons swap
    roles as the real ones would, a moment later."""

    def swap() -> None:
        deadline = time.monotonic() + 20
        while zk.read(PRIMARY) == old and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        zk.write(
            {
                PRIMARY: new,
                ("node.state.router", old): "secondary",
                ("node.state.router", new): "primary",
            }
        )

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "args, progress",
    [
        (("primary", "node2", "--wait"), "waiting for node2 to become primary... done in "),
        (("secondary", "node1", "-w"), "waiting for node1 to give up the primary role... done in "),
    ],
)
def test_wait_until_the_role_has_moved(pvc, zk, args, progress):
    daemons = act_as_daemons(zk, "node1", "node2")
    lines = ok(pvc("node", *args)).splitlines()
    daemons.join()
    assert lines[-1].startswith(progress) and lines[-1].endswith(" s")
    assert 0.2 <= float(lines[-1].split()[-2]) < 20
    assert zk.read(("node.state.router", "node2")) == "primary"


@pytest.mark.parametrize(
    "args",
    [
        ("node",),
        ("node", "frobnicate"),
        ("node", "info"),
        ("node", "primary"),
        ("node", "primary", "node1", "--force"),
        ("node", "secondary", "node1", "--forse"),
        ("node", "list", "-f", "xml"),
        ("node", "info", "node1", "--format"),
    ],
)
def test_bad_usage_exits_2(run_pvc, args):
    assert fails(run_pvc(*args), code=2).startswith("pvc: ")


def test_help_prints_usage(run_pvc):
    assert ok(run_pvc("node", "--help")).startswith("Usage:\n  pvc node run")


@pytest.mark.parametrize(
    "kind, state", [("daemon", "run"), ("coordinator", "primary"), ("domain", "ready")]
)
def test_state_endpoints(pvc, api_server, kind, state):
    reply = call(api_server, "GET", f"/node/node1/{kind}-state")
    assert reply == (200, {"name": "node1", "state": state})
    assert call(api_server, "GET", f"/node/ghost/{kind}-state")[0] == 404


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, "parameter 'state' is required"),
        ({"state": "tertiary"}, "'state' must be one of primary, secondary"),
    ],
)
def test_coordinator_state_bad_requests_are_400(pvc, api_server, zk, body, message):
    status, reply = call(api_server, "POST", "/node/node2/coordinator-state", body)
    assert status == 400 and message in reply["message"]
    assert zk.read(PRIMARY) == "node1"


def test_openapi_documents_the_node_endpoints(api_server):
    document = call(api_server, "GET", "/openapi.json", key=None)[1]
    paths = document["paths"]
    assert set(paths["/node/{node}/coordinator-state"]) == {"get", "post"}
    post = paths["/node/{node}/coordinator-state"]["post"]
    assert {"400", "404", "409"} <= set(post["responses"])
    assert {"/node", "/node/{node}", "/node/{node}/daemon-state", "/node/{node}/domain-state"} <= (
        set(paths)
    )


def test_fencing_history_in_node_info_and_cluster_status(pvc, zk):
    from pvc.ops import fence

    fence.record(zk, "node2", "dead", "no keepalive for 30.2 s", state="dead")
    fence.record(zk, "node2", "fence-failed", "wrong IPMI credentials (user or password)",
                 state="fence-failed", steps=["0.05 s: wrong IPMI credentials"])  # fmt: skip
    info = ok(pvc("node", "info", "node2"))
    history = info.split("fencing history:")[1].splitlines()
    assert history[1].split()[:2] == ["TIME", "EVENT"]
    assert history[2].split()[2:4] == ["dead", "no"]
    assert history[3].split()[2] == "fence-failed" and "credentials" in history[3]
    status = ok(pvc("cluster", "status"))
    fenced = status.split("dead or fenced nodes:")[1].splitlines()
    assert fenced[2].split()[:2] == ["node2", "fence-failed"] and "credentials" in fenced[2]
    document = json.loads(ok(pvc("node", "info", "node2", "-f", "json")))
    assert [entry["event"] for entry in document["fence_log"]] == ["dead", "fence-failed"]
    assert ok(pvc("node", "info", "node1")).count("fencing history") == 0


def test_domain_state_post_answers_202_with_the_task(pvc, api_server, zk):
    status, answer = call(api_server, "POST", "/node/node2/domain-state", {"state": "flush"})
    assert status == 202 and answer["task"]
    assert jobs.info(zk, answer["task"])["kind"] == "flush"
    zk.write({("node.state.domain", "hv1"): "flushed"})
    status, answer = call(api_server, "POST", "/node/hv1/domain-state", {"state": "flush"})
    assert (status, answer["task"]) == (200, None)


def test_flush_without_wait_prints_the_message_or_json(pvc, zk):
    line = ok(pvc("node", "flush", "node2")).strip()
    task = jobs.active(zk, ("flush",), "node2")[0]["id"]
    assert line == f"node 'node2' flushing: its VMs move to other nodes (task {task})"
    answer = json.loads(ok(pvc("node", "ready", "node2", "-f", "json")))
    assert answer["task"] != task and jobs.info(zk, task)["state"] == "cancelled"


def test_wait_on_a_flush_that_is_cancelled_exits_1(pvc, zk):
    def cancel_it() -> None:
        deadline = time.monotonic() + 20
        while not jobs.active(zk, ("flush",), "node2") and time.monotonic() < deadline:
            time.sleep(0.05)
        jobs.cancel(zk, jobs.active(zk, ("flush",), "node2")[0]["id"])

    canceller = threading.Thread(target=cancel_it, daemon=True)
    canceller.start()
    result = pvc("node", "flush", "node2", "--wait")
    canceller.join()
    line = fails(result)
    assert line.startswith("pvc: task ") and line.endswith(" was cancelled (cancelled)")
    assert result.stdout.splitlines()[-1] == "0/0 cancelled (cancelled)"
