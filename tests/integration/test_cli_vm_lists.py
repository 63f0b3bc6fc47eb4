"""`pvc vm list`, `info` and `dump` (and the endpoints behind them), run as the built dist/pvc
against a real API and Zookeeper."""

# the fixtures imported from test_cli_vm (pvc and vm1) are the tests' parameters
# ruff: noqa: F811

import json
import uuid as uuid_module

from tests.conftest import fails, ok
from tests.integration.test_api import call
from tests.integration.test_cli_vm import UUID1, observe, pvc, record, vm1  # noqa: F401 (fixtures)
from tests.integration.test_vm_ops import domain_xml


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
    status, reply = call(api_server, "GET", "/vm?regex=true")  # no match: regex is ignored
    assert (status, reply) == call(api_server, "GET", "/vm")
    status, reply = call(api_server, "GET", "/vm?match=*&regex=true")
    assert status == 400 and reply["message"].startswith("invalid regular expression '*': ")


def test_dump_prints_the_xml(pvc, vm1, api_server):
    assert ok(pvc("vm", "dump", "vm1")) == vm1.read_text() + "\n"
    assert ok(pvc("vm", "dump", UUID1)) == vm1.read_text() + "\n"
    answer = {"name": "vm1", "uuid": UUID1, "xml": vm1.read_text()}
    assert call(api_server, "GET", f"/vm/{UUID1}/xml") == (200, answer)
    assert call(api_server, "GET", "/vm/vm1/xml") == (200, answer)


def test_an_unknown_uuid_is_not_found(pvc):
    name = str(uuid_module.uuid4())
    assert fails(pvc("vm", "info", name)) == f"pvc: VM '{name}' does not exist"
