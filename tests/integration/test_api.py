"""The REST API over real HTTP (dist/pvc api serve) on a real Zookeeper."""

import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from openapi_spec_validator import validate

from pvc.ops import cluster
from pvc.zk import schema
from tests.conftest import free_port, write_config


def call(server, method, path, body=None, key="default", raw=None, headers=None):
    """(status, decoded JSON) of one request; key="default" sends the server's key."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(server.url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("X-Api-Key", server.key if key == "default" else key)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        assert error.headers["Content-Type"].startswith("application/json")
        return error.code, json.loads(error.read())


def refused(server, method, path, **request) -> str:
    """The message of a request that is refused with 400 (arguments as for call)."""
    status, body = call(server, method, path, **request)
    assert status == 400, body
    return body["message"]


def test_root_is_public_and_says_the_version(api_server):
    status, body = call(api_server, "GET", "/", key=None)
    assert status == 200 and body["name"] == "pvc" and body["version"]


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_missing_or_wrong_key_is_401(api_server, key):
    status, body = call(api_server, "GET", "/status", key=key)
    assert status == 401
    assert "API key" in body["message"]


def test_initialize_status_and_maintenance(api_server):
    assert call(api_server, "GET", "/status")[0] == 404  # not initialised yet
    status, body = call(api_server, "POST", "/initialize", {"name": "lab"})
    assert status == 200 and "initialised" in body["message"]
    status, body = call(api_server, "POST", "/initialize", {})
    assert status == 409 and "already initialised" in body["message"]
    status, body = call(api_server, "GET", "/status")
    assert status == 200
    assert body["cluster"] == "lab" and body["maintenance"] is False
    assert body["schema_version"] == schema.VERSION and body["nodes"]["total"] == 0
    assert call(api_server, "POST", "/status", {"maintenance": True})[0] == 200
    assert call(api_server, "GET", "/status")[1]["maintenance"] is True
    # parameters may come in the query string too
    assert call(api_server, "POST", "/status?maintenance=false")[0] == 200
    assert call(api_server, "GET", "/status")[1]["maintenance"] is False
    status, body = call(api_server, "POST", "/initialize", {"overwrite": True, "name": "new"})
    assert status == 200
    assert call(api_server, "GET", "/status")[1]["cluster"] == "new"


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"maintenance": "perhaps"}', "must be true or false"),
        (b'{"maintenance": true, "colour": "red"}', "unknown parameter 'colour'"),
        (b"{}", "'maintenance' is required"),
    ],
)
def test_malformed_bodies_are_400(api_server, raw, expected):
    assert expected in refused(api_server, "POST", "/status", raw=raw)


def test_unknown_path_and_method_are_json(api_server):
    status, body = call(api_server, "GET", "/no/such/thing")
    assert status == 404 and "no such endpoint" in body["message"]
    status, body = call(api_server, "DELETE", "/status")
    assert status == 405 and "not allowed" in body["message"]


def test_openapi_document_is_valid_and_generated_from_routes(api_server):
    status, document = call(api_server, "GET", "/openapi.json", key=None)
    assert status == 200
    validate(document)
    assert set(document["paths"]["/status"]) == {"get", "post"}
    post = document["paths"]["/status"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "maintenance"
    ]
    assert "401" in post["responses"]
    assert document["paths"]["/"]["get"]["security"] == []


def test_authentication_can_be_disabled(start_api):
    server = start_api(api={"authentication": {"enabled": False, "keys": []}})
    assert call(server, "POST", "/initialize", {}, key=None)[0] == 200


def test_tls(start_api, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = start_api(api={"tls": {"enabled": True, "cert_file": str(cert), "key_file": str(key)}})
    context = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(server.url + "/", context=context, timeout=5) as reply:
                assert json.loads(reply.read())["name"] == "pvc"
            break
        except urllib.error.URLError:
            assert time.monotonic() < deadline, "TLS API did not come up"
            time.sleep(0.1)
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(server.url + "/", timeout=5)  # system CAs do not know it


def test_unreachable_zookeeper_is_one_line_and_exit_1(tmp_path, pvc_bin):
    hosts = f"127.0.0.1:{free_port()}"
    config = write_config(
        tmp_path / "pvc.conf",
        hosts,
        zookeeper={"connect_timeout": 1},
        api={"authentication": {"enabled": False}},
    )
    started = time.monotonic()
    result = subprocess.run(
        [pvc_bin, "api", "serve", "--config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 5
    assert result.stderr.splitlines() == [f"pvc: cannot reach Zookeeper at {hosts} within 1 s"]


def _ready_node(zk, name: str) -> None:
    """A node record as a running, ready daemon writes it (placement needs one)."""
    zk.write(
        {
            ("node", name): "hypervisor",
            ("node.state.daemon", name): "run",
            ("node.state.domain", name): "ready",
            ("node.stats", name): {"mem_total": 65536, "mem_free": 65536, "load": 0.1},
        }
    )


def _test_xml(name: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
        "<memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>"
    )


def test_racing_first_defines_on_a_fresh_cluster_all_succeed(api_server, zk):
    assert call(api_server, "POST", "/initialize", {"name": "race"})[0] == 200
    _ready_node(zk, "node1")
    deadline = time.monotonic() + 10  # written by another session: the API's mirror follows
    while call(api_server, "GET", "/node/node1")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(
                lambda i: call(api_server, "POST", "/vm", {"xml": _test_xml(f"r{i}")}), range(20)
            )
        )
    assert [status for status, _ in answers] == [200] * 20, answers
    status, vms = call(api_server, "GET", "/vm")
    assert status == 200 and sorted(vm["name"] for vm in vms) == sorted(f"r{i}" for i in range(20))


def test_answers_correctly_while_the_tree_loads(start_api, zk):
    """The API listens before its mirror has loaded; what it answers meanwhile comes from
    Zookeeper, whole."""
    cluster.initialize(zk)
    pending = []
    for index in range(1500):
        vm_uuid, name = str(uuid.uuid4()), f"vm{index:04d}"
        txn = zk.client.transaction()
        txn.create(f"/domains/{vm_uuid}", name.encode())
        for key in ("state", "node", "memory", "vcpus", "tags", "node_limit", "lastnode"):
            txn.create(f"/domains/{vm_uuid}/{key}", b"stop" if key == "state" else b"")
        txn.create(f"/names/domains/{name}", vm_uuid.encode())
        pending.append(txn.commit_async())
    for result in pending:
        assert not any(isinstance(r, Exception) for r in result.get())
    server = start_api()  # returns once GET / answers
    status, vms = call(server, "GET", "/vm")
    assert status == 200 and len(vms) == 1500
    assert call(server, "GET", "/vm/vm0042")[1]["state"] == "stop"
    log = (server.config_path.parent / f"api-{server.port}.log").read_text()
    assert "API serving" in log
