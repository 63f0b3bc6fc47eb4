"""Hostile and careless requests to a real `pvc api serve`: each is refused with a 4xx and a
JSON message (none is a 500), and what is valid still works."""

import json
import socket
import time
import urllib.parse

import pytest

from pvc.ops import cluster
from tests.integration.test_api import call, refused
from tests.integration.test_vm_ops import add_hypervisor, domain_xml

UUID1 = "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d001"


def add_hypervisors(server, zk, *names: str) -> None:
    """Hypervisors `names` on an initialised cluster, once the API's mirror shows them."""
    cluster.initialize(zk)
    for name in names:
        add_hypervisor(zk, name, mem_free=100_000)
    deadline = time.monotonic() + 10
    while not all(call(server, "GET", f"/node/{name}")[1].get("alive") for name in names):
        assert time.monotonic() < deadline, "the API does not show the nodes"
        time.sleep(0.05)


@pytest.fixture
def api(api_server, zk):
    """The API on an initialised cluster with hypervisor node1 and a stopped vm1."""
    add_hypervisors(api_server, zk, "node1")
    status, answer = call(api_server, "POST", "/vm", {"xml": domain_xml("vm1", UUID1)})
    assert status == 200, answer
    return api_server


def raw_request(server, request: bytes) -> tuple[int, dict]:
    """(status, JSON body) of one hand-made HTTP/1.1 request."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


def test_a_key_that_is_not_utf8_is_a_wrong_key(api):
    request = b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\nX-Api-Key: \xff\xfe\r\n"
    status, body = raw_request(api, request + b"Connection: close\r\n\r\n")
    assert (status, body) == (401, {"message": "the API key is not valid"})


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"xml": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nests deeper than 32 levels"),
        (b'{"xml": "\\ud800"}', "parameter 'xml' is not valid Unicode text"),
        (b'{"xml": "\xff"}', "request body is not valid UTF-8"),
        (b'{"xml": "<domain/>", "node": NaN}', "not valid JSON"),
        (b'{"xml": "<domain/>", "xml": "<domain/>"}', "'xml' is given more than once"),
        (b'{"xml": "<domain/>", "autostart": "yes"}', "'autostart' must be true or false"),
        (b'{"xml": "<domain/>", "node": "a/b"}', "invalid node name 'a/b'"),
        (b'{"xml": "<domain/>", "tags": "a b"}', "invalid tags 'a b'"),
    ],
)
def test_bad_json_bodies_are_400(api, raw, message):
    assert message in refused(api, "POST", "/vm", raw=raw)


@pytest.mark.parametrize(
    "lines, message",
    [
        ("-Infinity", "'lines' must be an integer"),
        ("1e400", "'lines' must be an integer"),
        ("NaN", "'lines' must be an integer"),
        ("1_0", "'lines' must be an integer"),
        ("9" * 30, "'lines' must be an integer"),
        ("0", "'lines' must be at least 1 and at most 10000"),
        ("10001", "'lines' must be at least 1 and at most 10000"),
    ],
)
def test_console_lines_are_bounded_integers(api, lines, message):
    assert message in refused(api, "GET", f"/vm/vm1/console?lines={urllib.parse.quote(lines)}")
    assert call(api, "GET", "/vm/vm1/console?lines=10000")[0] == 200


@pytest.mark.parametrize(
    "path, message",
    [
        ("/vm/" + "a" * 10_000, "'vm' is longer than 63 characters"),
        ("/vm/a%01b", "invalid VM name or UUID 'a\\x01b'"),
        ("/vm/a%FF%FE", "the request path is not valid UTF-8"),
        ("/vm?match=%FF", "the query string is not valid UTF-8"),
        ("/vm?state=stop&state=start", "'state' is given more than once"),
        ("/vm?match=" + "a" * 300, "'match' is longer than 256 characters"),
        ("/node/-x", "invalid node name '-x'"),
        ("/tasks/a%20b", "invalid task id 'a b'"),
    ],
)
def test_bad_paths_and_query_strings_are_400(api, path, message):
    assert message in refused(api, "GET", path)


def test_a_body_where_none_is_taken_is_refused(api):
    status, body = call(api, "GET", "/vm", raw=json.dumps({"x": "y" * 1_000_000}).encode())
    assert status == 400 and "takes no request body" in body["message"]
    status, body = call(api, "DELETE", "/vm/vm1", raw=b'{"force": true}')
    assert status == 400 and call(api, "GET", "/vm/vm1")[0] == 200


def test_form_bodies_are_utf8_and_other_types_are_415(api):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = call(api, "POST", "/status", raw=b"maintenance=true", headers=form)
    assert (status, body) == (200, {"message": "maintenance mode on"})
    status, body = call(api, "POST", "/vm/vm1/rename", raw=b"new_name=%C3%A9", headers=form)
    assert status == 400 and "invalid VM name 'é'" in body["message"]  # not 'Ã©'
    status, body = call(api, "POST", "/vm/vm1/rename", raw=b"new_name=vm2", headers=form)
    assert status == 200 and call(api, "GET", "/vm/vm2")[1]["uuid"] == UUID1
    plain = {"Content-Type": "text/plain"}
    status, body = call(api, "POST", "/status", raw=b"maintenance=true", headers=plain)
    assert status == 415 and "application/json or application/x-www-form" in body["message"]
