"""The API's VM endpoints (/vm...) on a real API and Zookeeper: bad requests, the smaller
endpoints, a state change with wait, and their OpenAPI description."""

# the fixtures imported from test_cli_vm (pvc and vm1) are the tests' parameters
# ruff: noqa: F811

import pytest

from tests.integration.test_api import call
from tests.integration.test_cli_vm import UUID1, observe, once_state, pvc, record, vm1  # noqa: F401 (fixtures)
from tests.integration.test_vm_ops import domain_xml


@pytest.mark.parametrize(
    "method, path, body, message",
    [
        ("POST", "/vm", {}, "parameter 'xml' is required"),
        ("POST", "/vm", {"xml": "<domain/>", "autostart": "maybe"}, "must be true or false"),
        ("GET", "/vm?state=running", None, "'state' must be one of start, restart"),
        ("POST", "/vm/vm1/state", {"state": "pause"}, "'state' must be one of start, restart"),
        ("POST", "/vm/vm1/meta", {"selector": "none"}, "'selector' must be one of default, mem"),
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
