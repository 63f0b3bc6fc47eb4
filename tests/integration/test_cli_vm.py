"""`pvc vm ...`, run as the built dist/pvc against a real API and Zookeeper, with node records
written as the node daemons would; also the VM endpoints and the client-side --wait.

No node daemon runs: where a command waits for one, a thread plays its part.
"""

import json
import signal
import subprocess
import threading
import time
import uuid as uuid_module

import pytest

from pvc.cli import client
from pvc.cli import vm as vm_cli
from pvc.cli.connections import Connection
from pvc.errors import PvcError, Unavailable
from pvc.ops import cluster
from tests import processes
from tests.conftest import fails, ok
from tests.integration.test_api import call
from tests.integration.test_vm_ops import add_hypervisor, domain_xml

UUID1 = "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d001"


@pytest.fixture
def pvc(run_pvc, api_server, zk):
    """dist/pvc on the test API, whose cluster has hypervisors node1 (most free memory) and
    node2, and no VMs."""
    cluster.initialize(zk)
    add_hypervisor(zk, "node1", mem_free=3000)
    add_hypervisor(zk, "node2", mem_free=2000)

    def run(*args: str, **kwargs):
        return run_pvc("--config", str(api_server.config_path), *args, **kwargs)

    return run


@pytest.fixture
def vm1(pvc, tmp_path):
    """vm1 (UUID1, 256 MiB, 2 vCPUs) defined on node1; its XML file."""
    path = tmp_path / "vm1.xml"
    path.write_text(domain_xml("vm1", UUID1, memory=256, vcpus=2))
    ok(pvc("vm", "define", str(path)))
    return path


def record(pvc, name="vm1") -> dict:
    return json.loads(ok(pvc("vm", "info", name, "-f", "json")))


def observe(zk, state="running", node="node1", uuid=UUID1):
    zk.write({("domain.observed", uuid): {"node": node, "state": state}})


def once_state(zk, state: str, action) -> threading.Thread:
    """Runs `action()` on a thread once vm1's state is `state` (a node daemon's part)."""

    def run():
        deadline = time.monotonic() + 20
        while zk.read(("domain.state", UUID1)) != state and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# --- define, list, info, dump ----------------------------------------------------------------


def test_define_from_a_file_and_from_stdin(pvc, tmp_path):
    path = tmp_path / "vm1.xml"
    path.write_text(domain_xml("vm1", UUID1))
    assert ok(pvc("vm", "define", str(path))).strip() == "VM 'vm1' defined on node1"
    args = ("--node", "node2", "--limit", "node1,node2", "--selector", "vms", "--autostart",
            "--method", "shutdown", "--tag", "web", "--tag", "prod")  # fmt: skip
    answer = ok(pvc("vm", "define", "-", *args, input=domain_xml("vm2")))
    assert answer.strip() == "VM 'vm2' defined on node2"
    vm2 = record(pvc, "vm2")
    assert (vm2["node_limit"], vm2["node_selector"]) == (["node1", "node2"], "vms")
    assert (vm2["node_autostart"], vm2["migration_method"]) == (True, "shutdown")
    assert vm2["tags"] == ["prod", "web"]
    assert record(pvc)["node_autostart"] is False


def test_define_errors_are_one_line(pvc, vm1, tmp_path):
    # unreadable files: tests/integration/test_cli_input_files.py
    assert fails(pvc("vm", "define", str(vm1))) == "pvc: a VM named 'vm1' already exists"
    line = fails(pvc("vm", "define", "-", input="<domain><name>x"))
    assert line.startswith("pvc: the XML does not parse: ")
    line = fails(pvc("vm", "define", "-", "--node", "ghost", input=domain_xml("vm2")))
    assert line == "pvc: node 'ghost' does not exist"
    assert fails(pvc("vm", "define", "-", "--method", "x", input=domain_xml("vm2"))).startswith(
        "pvc: parameter 'migration_method' must be one of live, shutdown, none"
    )


def names(pvc, *args: str) -> list[str]:
    return [vm["name"] for vm in json.loads(ok(pvc("vm", "list", "-f", "json", *args)))]


def test_list_json_and_pretty(pvc, vm1, zk, api_server):
    ok(pvc("vm", "define", "-", "--node", "node2", input=domain_xml("db1", memory=1024)))
    listed = json.loads(ok(pvc("vm", "list", "-f", "json")))
    assert [vm["name"] for vm in listed] == ["db1", "vm1"]
    assert call(api_server, "GET", "/vm") == (200, listed)
    assert json.loads(ok(pvc("vm", "list", "-f", "json-pretty"))) == listed
    assert names(pvc, "--node", "node2") == ["db1"]
    assert names(pvc, "*1") == ["db1", "vm1"]
    reason = "the guest did not shut down within 180 s; it still runs"
    zk.write({("domain.state", UUID1): "start", ("domain.failed_reason", UUID1): reason})
    observe(zk)
    assert names(pvc, "--state", "start") == ["vm1"]
    lines = ok(pvc("vm", "list")).splitlines()
    assert lines[0].split() == [
        "NAME", "STATE", "NODE", "LASTNODE", "MEMORY", "(MiB)", "VCPUS", "AUTOSTART", "OBSERVED",
        "FAILED", "REASON",
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["db1"].split() == ["db1", "stop", "node2", "-", "1024", "1", "no", "-", "-"]
    assert rows["vm1"].split()[:8] == ["vm1", "start", "node1", "-", "256", "2", "no",
                                       "running@node1"]  # fmt: skip
    assert rows["vm1"].endswith(reason[:39] + "…")  # limits.one_line, 40 characters
    assert ok(pvc("vm", "list", "nothing")).strip() == "no VMs"


def test_info_json_and_pretty(pvc, vm1):
    info = record(pvc)
    assert (info["name"], info["uuid"], info["state"], info["node"]) == (
        "vm1", UUID1, "stop", "node1"
    )  # fmt: skip
    assert record(pvc, UUID1) == info
    pretty = dict(line.split(":", 1) for line in ok(pvc("vm", "info", "vm1")).splitlines())
    pretty = {label: value.strip() for label, value in pretty.items()}
    assert pretty["uuid"] == UUID1 and pretty["memory"] == "256 MiB"
    assert pretty["node limit"] == "any node" and pretty["node selector"] == "cluster default"
    assert pretty["last node"] == "-" and pretty["autostart"] == "no"


def test_list_matches_a_glob_or_with_regex_a_regex(pvc, vm1, api_server):
    for name in ("db1", "web.1", "webx1"):
        ok(pvc("vm", "define", "-", input=domain_xml(name)))
    assert names(pvc, "web.1") == ["web.1"]  # a glob: '.' is a dot
    assert names(pvc, "v*") == ["vm1"]
    assert names(pvc, "m1") == []  # the whole name
    assert names(pvc, "^v") == []
    assert names(pvc, "^v", "--regex") == ["vm1"]
    assert names(pvc, "web.1", "--regex") == ["web.1", "webx1"]
    assert names(pvc, "--regex", "m1") == ["vm1"]
    assert fails(pvc("vm", "list", "web(", "--regex")) == (
        "pvc: invalid regular expression 'web(': missing ), unterminated subpattern at position 3"
    )
    assert fails(pvc("vm", "list", "--regex"), code=2) == (
        "pvc: --regex needs a <match> pattern; see 'pvc vm --help'"
    )
    line = fails(pvc("vm", "stop", "vm1", "--timeout", "5"), code=2)
    assert line == "pvc: --timeout applies only with --wait; see 'pvc vm --help'"
    line = fails(pvc("vm", "stop", "vm1", "-w", "--timeout", "-1"), code=2)
    assert line == "pvc: --timeout must be a positive number of seconds, not '-1'"
    assert call(api_server, "GET", "/vm?match=%5Ev&regex=true")[1][0]["name"] == "vm1"
    status, reply = call(api_server, "GET", "/vm?regex=true")
    assert status == 400 and reply["message"] == "regex applies only to a name pattern (match)"
    status, reply = call(api_server, "GET", "/vm?match=*&regex=true")
    assert status == 400 and reply["message"].startswith("invalid regular expression '*': ")


def test_dump_prints_the_xml(pvc, vm1, api_server):
    assert ok(pvc("vm", "dump", "vm1")) == vm1.read_text() + "\n"
    assert ok(pvc("vm", "dump", UUID1)) == vm1.read_text() + "\n"
    answer = {"name": "vm1", "uuid": UUID1, "xml": vm1.read_text()}
    assert call(api_server, "GET", f"/vm/{UUID1}/xml") == (200, answer)
    assert call(api_server, "GET", "/vm/vm1/xml") == (200, answer)


# --- changes ---------------------------------------------------------------------------------


def test_start_stop_and_other_state_messages(pvc, vm1, zk):
    assert ok(pvc("vm", "start", "vm1")).strip() == "VM 'vm1' starting on node1"
    assert zk.read(("domain.state", UUID1)) == "start"
    assert ok(pvc("vm", "restart", "vm1")).strip() == "VM 'vm1' restarting"
    zk.write({("domain.state", UUID1): "start"})
    assert ok(pvc("vm", "shutdown", "vm1", "--force")).strip() == "VM 'vm1' shutting down"
    assert zk.read(("domain.shutdown_force", UUID1)) is True
    assert ok(pvc("vm", "stop", UUID1)).strip() == "VM 'vm1' stopping (forced off)"
    assert ok(pvc("vm", "disable", "vm1")).strip().startswith("VM 'vm1' disabled")
    line = fails(pvc("vm", "start", "vm1"))
    assert line == "pvc: VM 'vm1' is disabled; use force to start it anyway"
    assert ok(pvc("vm", "start", "vm1", "--force")).strip() == "VM 'vm1' starting on node1"
    assert fails(pvc("vm", "shutdown", "ghost")) == "pvc: VM 'ghost' does not exist"


def test_a_disabled_vm_stays_disabled(pvc, vm1, zk, api_server):
    """stop and shutdown of a VM already off change nothing and say so (200, as a start of a
    running VM does); a disabled VM is not turned into a stopped one."""
    ok(pvc("vm", "disable", "vm1"))
    for verb in ("stop", "shutdown"):
        line = ok(pvc("vm", verb, UUID1, "--wait")).splitlines()[0]
        assert line == "VM 'vm1' is already disabled (and so off); nothing changed"
        assert zk.read(("domain.state", UUID1)) == "disable"
    line = ok(pvc("vm", "disable", "vm1")).strip()
    assert line == "VM 'vm1' is already disabled; nothing changed"
    status, reply = call(api_server, "POST", "/vm/vm1/state", {"state": "stop"})
    assert status == 200 and reply["message"].startswith("VM 'vm1' is already disabled")
    assert (reply["name"], reply["uuid"]) == ("vm1", UUID1)
    ok(pvc("vm", "start", "vm1", "--force"))
    assert ok(pvc("vm", "start", "vm1")).strip() == "VM 'vm1' is already running; nothing changed"
    ok(pvc("vm", "stop", "vm1"))
    assert ok(pvc("vm", "stop", "vm1")).strip() == "VM 'vm1' is already stopped; nothing changed"
    assert zk.read(("domain.state", UUID1)) == "stop"


def test_migrate_unmigrate_and_move(pvc, vm1, zk):
    ok(pvc("vm", "start", "vm1"))
    assert ok(pvc("vm", "migrate", "vm1")).strip() == "VM 'vm1' migrating from node1 to node2"
    zk.write({("domain.state", UUID1): "start"})
    line = fails(pvc("vm", "migrate", "vm1", "node1"))
    assert line.startswith("pvc: VM 'vm1' is already migrated (from node1); use force")
    assert ok(pvc("vm", "unmigrate", "vm1")).strip() == "VM 'vm1' returning from node2 to node1"
    zk.write({("domain.state", UUID1): "start"})
    assert ok(pvc("vm", "move", "vm1", "node2")).strip() == "VM 'vm1' moving from node1 to node2"
    assert (record(pvc)["node"], record(pvc)["lastnode"]) == ("node2", "")
    assert fails(pvc("vm", "move", "vm1", "node2")) == "pvc: the VM is already on node node2"
    line = ok(pvc("vm", "move", UUID1, "node1")).strip()
    assert line == "VM 'vm1' moving from node2 to node1"


def test_modify_meta_rename_and_tags(pvc, vm1, zk, tmp_path):
    bigger = tmp_path / "bigger.xml"
    bigger.write_text(domain_xml("vm1", UUID1, memory=512))
    assert ok(pvc("vm", "modify", "vm1", str(bigger), "--restart")).strip() == "VM 'vm1' modified"
    assert record(pvc)["memory"] == 512
    line = fails(pvc("vm", "modify", "vm1", "-", input=domain_xml("vm1")))
    assert line.startswith("pvc: the new XML has UUID ")
    line = fails(pvc("vm", "modify", UUID1, "-", input=domain_xml("web1", UUID1)))
    assert line == (
        "pvc: the XML names the VM 'web1', not 'vm1': modify keeps the name; use rename (on a "
        "stopped VM) to change it"
    )
    assert zk.read(("name.domain", "web1")) is None and record(pvc)["name"] == "vm1"
    assert ok(pvc("vm", "meta", "vm1", "--limit", "node1", "--no-autostart", "--method", "none"))
    meta = dict(line.split(":", 1) for line in ok(pvc("vm", "meta", "vm1")).splitlines())
    assert [value.strip() for value in meta.values()] == ["vm1", "node1", "cluster default",
                                                          "no", "none"]  # fmt: skip
    ok(pvc("vm", "meta", "vm1", "--limit", "", "--autostart", "--selector", "load"))
    info = record(pvc)
    assert (info["node_limit"], info["node_autostart"], info["node_selector"]) == (
        [], True, "load"
    )  # fmt: skip
    line = ok(pvc("vm", "meta", UUID1, "--selector", "default")).strip()
    assert line == "VM 'vm1' metadata updated"
    assert record(pvc)["node_selector"] is None
    meta = dict(line.split(":", 1) for line in ok(pvc("vm", "meta", "vm1")).splitlines())
    assert meta["node selector"].strip() == "cluster default"
    ok(pvc("vm", "meta", "vm1", "--selector", "vms"))
    ok(pvc("vm", "meta", "vm1", "--selector", ""))
    assert record(pvc)["node_selector"] is None
    assert fails(pvc("vm", "meta", "vm1", "--selector", "random")) == (
        "pvc: parameter 'selector' must be one of default, mem, memprov, load, vcpus, vms "
        "(or empty)"
    )
    assert ok(pvc("vm", "rename", "vm1", "web1")).strip() == "VM 'vm1' renamed to 'web1'"
    assert ok(pvc("vm", "tag", "web1")).strip() == "no tags"
    assert ok(pvc("vm", "tag", "web1", "--add", "b", "--add", "a")).strip() == "a, b"
    assert ok(pvc("vm", "tag", "web1", "--remove", "a")).strip() == "b"
    assert fails(pvc("vm", "tag", "web1", "--add", "a b")).startswith(
        "pvc: invalid tags 'a b': comma-separated tags (letters, digits, '.', '-' and '_', "
        "starting with a letter or digit"
    )
    zk.write({("domain.state", UUID1): "start"})
    assert fails(pvc("vm", "rename", "web1", "web2")).startswith("pvc: VM 'web1' must be stopped")


def test_modify_with_restart_checks_memory_as_start_does(pvc, vm1, zk):
    ok(pvc("vm", "start", "vm1"))
    before = record(pvc)
    line = fails(pvc("vm", "modify", "vm1", "-", "--restart",
                     input=domain_xml("vm1", UUID1, memory=8192)))  # fmt: skip
    assert line == (
        "pvc: refused: node node1 would have 8192 MiB allocated to VMs, more than its "
        "4096 MiB x 1 = 4096 MiB"
    )
    assert record(pvc) == before
    answer = pvc("vm", "modify", "vm1", "-", "--restart", input=domain_xml("vm1", UUID1, 4096))
    assert ok(answer).strip() == "VM 'vm1' modified, restarting it"
    assert (record(pvc)["memory"], record(pvc)["state"]) == (4096, "restart")


def test_undefine_and_remove(pvc, vm1, zk):
    zk.write({("domain.state", UUID1): "start"})
    line = fails(pvc("vm", "undefine", "vm1"))
    assert line == "pvc: VM 'vm1' is running; stop it first or use force"
    assert fails(pvc("vm", "remove", "vm1", "--force", input="n\n")).endswith("pvc: aborted")
    result = pvc("vm", "remove", "vm1", "--force", input="y\n")
    assert ok(result).strip() == "VM 'vm1' removed"
    assert result.stderr.startswith("Remove VM 'vm1'?")
    ok(pvc("vm", "define", str(vm1)))
    assert ok(pvc("vm", "remove", "vm1", "-y")).strip() == "VM 'vm1' removed"
    ok(pvc("vm", "define", str(vm1)))
    assert ok(pvc("vm", "undefine", UUID1)).strip() == "VM 'vm1' removed"
    assert zk.children("base.domains") == []


# --- console log -----------------------------------------------------------------------------


def test_log(pvc, vm1, zk, api_server):
    assert ok(pvc("vm", "log", "vm1")) == ""
    reply = call(api_server, "GET", f"/vm/{UUID1}/console")[1]
    assert reply == {"name": "vm1", "uuid": UUID1, "lines": []}
    zk.write({("domain.console_log", UUID1): "boot\nlogin: \nroot\n"})
    assert ok(pvc("vm", "log", "vm1", "-l", "2")) == "login: \nroot\n"
    assert fails(pvc("vm", "log", "vm1", "--lines", "0")) == (
        "pvc: parameter 'lines' must be at least 1 and at most 10000"
    )


def test_log_follow_prints_new_lines_until_interrupted(pvc, vm1, zk, api_server, pvc_bin, tmp_path):
    zk.write({("domain.console_log", UUID1): "one\ntwo\n"})
    env = {"PVC_CLIENT_DIR": str(tmp_path / "client")}
    args = [pvc_bin, "--config", str(api_server.config_path), "vm", "log", "vm1", "--follow"]
    with processes.running(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True) as process:  # fmt: skip
        assert [process.stdout.readline() for _ in range(2)] == ["one\n", "two\n"]
        zk.write({("domain.console_log", UUID1): "one\ntwo\nthree\nfour\n"})
        assert [process.stdout.readline() for _ in range(2)] == ["three\n", "four\n"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
        assert "Traceback" not in process.stderr.read()


@pytest.mark.parametrize(
    "before, now, new",
    [
        ([], ["a"], ["a"]),
        (["a", "b"], ["a", "b"], []),
        (["a", "b"], ["b", "c", "d"], ["c", "d"]),
        (["a", "b"], ["x", "y"], ["x", "y"]),
        (["x", "x"], ["x", "x", "x"], ["x"]),
    ],
)
def test_new_lines(before, now, new):
    assert vm_cli.new_lines(before, now) == new


# --- --wait ----------------------------------------------------------------------------------


def wait_line(result) -> tuple[str, float]:
    """The progress line of --wait, and the seconds it says."""
    line = ok(result).splitlines()[-1]
    head, _, took = line.rpartition(" done in ")
    assert took.endswith(" s")
    return head, float(took[:-2])


def test_start_wait_ends_when_the_node_reports_it_running(pvc, vm1, zk):
    daemon = once_state(zk, "start", lambda: observe(zk))
    head, took = wait_line(pvc("vm", "start", "vm1", "--wait"))
    daemon.join()
    assert head == "waiting for vm1 to start on node1..."
    assert 0.3 < took < 20


def test_stop_wait_ends_when_the_node_reports_it_off(pvc, vm1, zk):
    zk.write({("domain.state", UUID1): "start"})
    observe(zk)
    daemon = once_state(zk, "stop", lambda: observe(zk, "shutoff"))
    head, took = wait_line(pvc("vm", "stop", "vm1", "-w"))
    daemon.join()
    assert head == "waiting for vm1 to stop..." and 0.3 < took < 20


def test_migrate_wait_ends_when_it_runs_on_the_target(pvc, vm1, zk):
    zk.write({("domain.state", UUID1): "start"})
    observe(zk)

    def arrive():
        observe(zk, node="node2")
        zk.write({("domain.state", UUID1): "start"})

    daemon = once_state(zk, "migrate", arrive)
    head, took = wait_line(pvc("vm", "migrate", "vm1", "-w"))
    daemon.join()
    assert head == "waiting for vm1 to move to node2..." and 0.3 < took < 20


def test_moving_a_stopped_vm_waits_for_nothing(pvc, vm1):
    head, took = wait_line(pvc("vm", "move", "vm1", "node2", "-w"))
    assert head == "waiting for vm1 to move to node2..." and took < 5


@pytest.mark.parametrize(
    "verb, failure, message",
    [
        ("start", {"domain.state": "fail", "domain.failed_reason": "no such disk"},
         "pvc: vm1 did not start on node1: state fail (no such disk)"),
        ("shutdown", {"domain.state": "start", "domain.failed_reason": "the guest did not shut "
                      "down within 180 s; it still runs"},
         "pvc: vm1 did not shut down: state start (the guest did not shut down within 180 s; "
         "it still runs)"),
    ],
)  # fmt: skip
def test_wait_reports_a_failure(pvc, vm1, zk, verb, failure, message):
    if verb == "shutdown":
        zk.write({("domain.state", UUID1): "start"})
        observe(zk)
    values = {(key, UUID1): value for key, value in failure.items()}
    daemon = once_state(zk, verb, lambda: zk.write(values))
    result = pvc("vm", verb, "vm1", "--wait")
    daemon.join()
    assert fails(result) == message
    assert result.stdout.splitlines()[-1].startswith("waiting for vm1 to ")


def test_wait_times_out(api_server, pvc, vm1, zk, capsys):
    zk.write({("domain.state", UUID1): "start"})
    connection = Connection("test", "127.0.0.1", api_server.port, api_key=api_server.key)
    api = client.ApiClient(connection)
    deadline = time.monotonic() + 10
    while api.get(f"/vm/{UUID1}")["state"] != "start":  # the API's mirror follows the write
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    message = (
        r"vm1 is still on its way to start on node1 after 1 s \(now: state start, no node "
        r"reports it yet\); see 'pvc vm info vm1'"
    )
    with pytest.raises(PvcError, match=message):
        vm_cli.wait(api, UUID1, "start", timeout=1.0)
    assert time.monotonic() - started < 5
    assert capsys.readouterr().out == "waiting for vm1 to start on node1...\n"


def test_a_wait_that_runs_out_says_the_vm_is_still_on_its_way(pvc, vm1, zk, api_server):
    """CLI: exit 1 with one line saying where the VM is now; API: 202 with the record."""
    result = pvc("vm", "start", "vm1", "--wait", "--timeout", "1")
    assert fails(result) == (
        "pvc: vm1 is still on its way to start on node1 after 1 s (now: state start, no node "
        "reports it yet); see 'pvc vm info vm1'"
    )
    assert result.stdout.splitlines() == [
        "VM 'vm1' starting on node1", "waiting for vm1 to start on node1..."
    ]  # fmt: skip
    observe(zk, "shutoff")
    result = pvc("vm", "restart", UUID1, "-w", "--timeout", "0.5")
    assert fails(result) == (
        "pvc: vm1 is still on its way to restart on node1 after 0.5 s (now: state restart, "
        "node1 reports it shutoff); see 'pvc vm info vm1'"
    )
    zk.write({("domain.state", UUID1): "start"})
    params = {"state": "start", "wait": True, "timeout": 0.5}
    status, reply = call(api_server, "POST", f"/vm/{UUID1}/state", params)
    assert status == 202
    assert reply == record(pvc) | {
        "message": "VM 'vm1' is still on its way to start after 0.5 s (now: state start, node1 "
        "reports it shutoff)"
    }  # fmt: skip
    params = {"action": "migrate", "wait": True, "timeout": 0.5}
    status, reply = call(api_server, "POST", "/vm/vm1/node", params)
    assert status == 202 and (reply["state"], reply["node"]) == ("migrate", "node2")
    assert reply["message"] == (
        "VM 'vm1' is still on its way to move to node2 after 0.5 s (now: state migrate, node1 "
        "reports it shutoff)"
    )


def test_wait_rides_out_an_api_that_does_not_answer(monkeypatch, capsys):
    """The API moves with the primary role: a poll that gets no answer is tried again."""
    answers = [
        {"name": "vm1", "state": "start", "node": "node1", "observed": None},
        Unavailable("cannot reach the API"),
        {"name": "vm1", "state": "start", "node": "node1",
         "observed": {"node": "node1", "state": "running"}},
    ]  # fmt: skip

    class FakeApi:
        def get(self, path):
            assert path == "/vm/vm1"
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    monkeypatch.setattr(vm_cli, "POLL_INTERVAL", 0.01)
    vm_cli.wait(FakeApi(), "vm1", "start", timeout=5)
    assert answers == []
    assert capsys.readouterr().out.startswith("waiting for vm1 to start on node1... done in ")


# --- usage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("vm",),
        ("vm", "frobnicate"),
        ("vm", "start"),
        ("vm", "restart", "vm1", "--force"),
        ("vm", "meta", "vm1", "--autostart", "--no-autostart"),
        ("vm", "unmigrate", "vm1", "node2"),
        ("vm", "list", "-f", "xml"),
        ("vm", "info", "vm1", "--format"),
        ("vm", "log", "vm1", "-l", "many"),
        ("vm", "list", "--regex"),
        ("vm", "start", "vm1", "--timeout", "5"),
        ("vm", "start", "vm1", "--wait", "--timeout", "0"),
        ("vm", "stop", "vm1", "--wait", "--timeout", "soon"),
    ],
)
def test_bad_usage_exits_2(run_pvc, args):
    assert fails(run_pvc(*args), code=2).startswith("pvc: ")


def test_help_prints_usage(run_pvc):
    assert ok(run_pvc("vm", "--help")).startswith("Usage:\n  pvc vm define <xmlfile>")


# --- the endpoints ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body, message",
    [
        ("POST", "/vm", {}, "parameter 'xml' is required"),
        ("POST", "/vm", {"xml": "<domain/>", "autostart": "maybe"}, "must be true or false"),
        ("GET", "/vm?state=running", None, "'state' must be one of start, restart"),
        ("POST", "/vm/vm1/state", {"state": "pause"}, "'state' must be one of start, restart"),
        ("POST", "/vm/vm1/state", {"state": "stop", "force": True},
         "'force' applies only to states start and shutdown"),
        ("POST", "/vm/vm1/node", {"action": "unmigrate", "node": "node2"},
         "'node' does not apply to unmigrate"),
        ("POST", "/vm/vm1/node", {"action": "move", "force": True},
         "'force' applies only to action migrate"),
        ("POST", "/vm/vm1/meta", {}, "nothing to change"),
        ("POST", "/vm/vm1/meta", {"selector": "none"}, "'selector' must be one of default, mem"),
        ("POST", "/vm/vm1/state", {"state": "stop", "timeout": 5},
         "'timeout' applies only with wait"),
        ("POST", "/vm/vm1/state", {"state": "stop", "wait": True, "timeout": 0},
         "'timeout' must be more than 0 and at most 3600"),
        ("POST", "/vm/vm1/node", {"action": "move", "wait": True, "timeout": 3601},
         "'timeout' must be more than 0 and at most 3600"),
        ("POST", "/vm/vm1/state", {"state": "stop", "wait": True, "timeout": "soon"},
         "'timeout' must be a number"),
        ("GET", "/vm?match=web(&regex=yes", None, "invalid regular expression 'web('"),
        ("PUT", "/vm/vm1", {"xml": domain_xml("vm1", UUID1), "colour": "red"},
         "unknown parameter 'colour'"),
        ("GET", "/vm/vm1/console?lines=all", None, "'lines' must be an integer"),
    ],
)  # fmt: skip
def test_bad_requests_are_400(pvc, vm1, api_server, zk, method, path, body, message):
    before = record(pvc)
    status, reply = call(api_server, method, path, body)
    assert status == 400 and message in reply["message"]
    assert record(pvc) == before


def test_small_endpoints(pvc, vm1, api_server):
    xml = {"name": "vm1", "uuid": UUID1, "xml": vm1.read_text()}
    assert call(api_server, "GET", "/vm/vm1/xml") == (200, xml)
    assert call(api_server, "GET", f"/vm/{UUID1}/state")[1] == {
        "name": "vm1", "state": "stop", "failed_reason": None, "observed": None,
    }  # fmt: skip
    assert call(api_server, "GET", "/vm/vm1/node")[1] == {
        "name": "vm1", "node": "node1", "lastnode": "", "observed": None,
    }  # fmt: skip
    assert call(api_server, "GET", "/vm/vm1/tags")[1] == {"name": "vm1", "tags": []}
    reply = call(api_server, "POST", f"/vm/{UUID1}/tags", {"add": "a"})[1]
    assert reply == {"name": "vm1", "uuid": UUID1, "tags": ["a"]}
    reply = call(api_server, "POST", f"/vm/{UUID1}/meta", {"selector": "", "limit": ""})[1]
    assert reply == {"message": "VM 'vm1' metadata updated", "name": "vm1", "uuid": UUID1}
    reply = call(api_server, "PUT", f"/vm/{UUID1}", {"xml": vm1.read_text()})[1]
    assert reply == {"message": "VM 'vm1' modified", "name": "vm1", "uuid": UUID1}
    status, reply = call(api_server, "PUT", "/vm/vm1", {"xml": domain_xml("web1", UUID1)})
    assert status == 409 and "use rename" in reply["message"]
    assert call(api_server, "GET", "/vm/ghost/meta")[0] == 404
    status, reply = call(api_server, "POST", "/vm", {"xml": domain_xml("vm2"), "tags": "a,,b"})
    assert status == 200 and record(pvc, "vm2")["tags"] == ["a", "b"]


def test_state_wait_over_the_api(pvc, vm1, api_server, zk):
    daemon = once_state(zk, "start", lambda: observe(zk))
    status, reply = call(api_server, "POST", "/vm/vm1/state", {"state": "start", "wait": True})
    daemon.join()
    assert status == 200
    assert reply["message"] == "VM 'vm1' starting on node1"
    assert (reply["state"], reply["observed"]) == ("start", {"node": "node1", "state": "running"})


def test_openapi_documents_the_vm_endpoints(api_server):
    paths = call(api_server, "GET", "/openapi.json", key=None)[1]["paths"]
    assert set(paths["/vm"]) == {"get", "post"}
    assert set(paths["/vm/{vm}"]) == {"get", "put", "delete"}
    for tail in ("/meta", "/state", "/node", "/tags"):
        assert set(paths["/vm/{vm}" + tail]) == {"get", "post"}
    assert {"/vm/{vm}/xml", "/vm/{vm}/rename", "/vm/{vm}/console"} <= set(paths)
    assert {"202", "400", "404", "409"} <= set(paths["/vm/{vm}/state"]["post"]["responses"])
    assert "202" in paths["/vm/{vm}/node"]["post"]["responses"]
    assert [p["name"] for p in paths["/vm"]["get"]["parameters"]][-2:] == ["match", "regex"]


def test_an_unknown_uuid_is_not_found(pvc):
    name = str(uuid_module.uuid4())
    assert fails(pvc("vm", "info", name)) == f"pvc: VM '{name}' does not exist"


def test_concurrent_defines_of_one_name_make_one_vm(pvc, zk):
    results = []

    def define():
        results.append(pvc("vm", "define", "-", input=domain_xml("twin")))

    threads = [threading.Thread(target=define) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result.returncode for result in results) == [0, 1, 1, 1]
    assert len(zk.children("base.domains")) == 1
