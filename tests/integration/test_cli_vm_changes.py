"""`pvc vm` state changes, moves, modify, meta, rename, tags and remove, run as the built
dist/pvc against a real API and Zookeeper."""

# the fixtures imported from test_cli_vm (pvc and vm1) are the tests' parameters
# ruff: noqa: F811

from tests.conftest import fails, ok
from tests.integration.test_api import call
from tests.integration.test_cli_vm import UUID1, pvc, record, vm1  # noqa: F401 (fixtures)
from tests.integration.test_vm_ops import domain_xml


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
