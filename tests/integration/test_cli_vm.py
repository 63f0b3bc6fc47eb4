"""`pvc vm define` and the command's usage, run as the built dist/pvc against a real API and
Zookeeper, with node records written as the node daemons would.

The fixtures and helpers here serve the other `pvc vm` tests too (test_cli_vm_*.py: lists,
changes, the console log, --wait; test_api_vm.py: the VM endpoints). No node daemon runs:
where a command waits for one, a thread plays its part.
"""

import json
import threading
import time

import pytest

from pvc.ops import cluster
from tests.conftest import fails, ok
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


# --- define ----------------------------------------------------------------------------------


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
