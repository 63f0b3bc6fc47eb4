"""The API's HTTP server (pvc.api.http_server, channels, request_parser, http_errors) over
real sockets to `dist/pvc api serve`: size limits, waitress's errors as JSON, bodies refused
before they are read, TLS with large bodies and answers, long polls that outlive the idle
timeout, and room made at the connection limit."""

import json
import resource
import socket
import ssl
import subprocess
import time

import pytest

from pvc import limits
from pvc.api.http_server import FILES_PER_CONNECTION, FILES_RESERVED
from pvc.ops import cluster, placement, vm
from tests import processes
from tests.conftest import free_port, wait_for_http, write_config
from tests.integration.test_vm_ops import add_hypervisor, domain_xml
from tests.tls_api import client_context, tls_section, wait_until_serving

MB = 1024 * 1024


def connect(port: int, context: ssl.SSLContext | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(sock, server_hostname="127.0.0.1") if context else sock


def request_head(method: str, path: str, key: str | None = None, **headers: str) -> bytes:
    lines = [f"{method} /api/v1{path} HTTP/1.1", "Host: 127.0.0.1"]
    if key is not None:
        lines.append(f"X-Api-Key: {key}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(reader) -> tuple[int, dict[str, str], bytes]:
    """(status, headers by lower-case name, body) of the next answer on a connection."""
    status = int(reader.readline().split()[1])
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, reader.read(int(headers.get("content-length", 0)))


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], dict]:
    """Sends `data`, reads one answer, which must be JSON."""
    with connect(port) as sock:
        sock.sendall(data)
        status, headers, body = read_answer(sock.makefile("rb"))
    assert headers["content-type"] == "application/json"
    return status, headers, json.loads(body)


def test_a_body_over_the_limit_is_refused_at_its_headers(api_server):
    head = request_head(
        "POST", "/vm", api_server.key, Content_Type="application/json", Content_Length=100 * MB
    )
    status, headers, body = exchange(api_server.port, head)  # no byte of the body sent
    assert status == 413 and headers["connection"] == "close"
    assert body == {"message": f"the request body is larger than {limits.BODY_MAX} bytes"}


def test_a_chunked_body_is_read_no_further_than_the_limit(api_server):
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    sent = 0
    with connect(api_server.port) as sock:
        sock.sendall(request_head("POST", "/vm", api_server.key, Transfer_Encoding="chunked"))
        with pytest.raises((BrokenPipeError, ConnectionResetError)):  # closed by the server
            while sent < 100 * MB:
                sock.sendall(chunk)
                sent += len(chunk)
    assert sent < limits.BODY_MAX + 16 * MB  # the limit, and what socket buffers took


def test_a_chunk_announced_over_the_limit_is_413_at_once(api_server):
    with connect(api_server.port) as sock:
        sock.sendall(request_head("POST", "/vm", api_server.key, Transfer_Encoding="chunked"))
        sock.sendall(b"fffffffffffffffffffff\r\nxx")  # then nothing: the client stalls
        status, _, body = read_answer(sock.makefile("rb"))
    assert status == 413 and "larger than" in json.loads(body)["message"]


@pytest.mark.parametrize(
    "framing",
    [
        {"Content_Length": str(limits.BODY_MAX)},  # (a larger one gets 413 at once)
        {"Transfer_Encoding": "chunked"},
        {"Content_Length": str(limits.BODY_MAX), "Expect": "100-continue"},
    ],
    ids=["length", "chunked", "expect-continue"],
)
@pytest.mark.parametrize("key", [None, "not-the-key"])
def test_a_body_without_a_valid_key_is_refused_before_it_is_sent(api_server, framing, key):
    head = request_head("POST", "/vm", key, Content_Type="application/json", **framing)
    status, headers, body = exchange(api_server.port, head)
    assert status == 401 and headers["connection"] == "close"
    assert "API key" in body["message"]


def test_public_endpoints_and_bodiless_requests_are_left_to_the_application(api_server):
    status, _, body = exchange(
        api_server.port,
        request_head("GET", "/", Content_Type="application/json", Content_Length="2") + b"{}",
    )
    assert status == 400 and "takes no request body" in body["message"]  # the application's
    status, headers, body = exchange(api_server.port, request_head("GET", "/vm"))
    assert status == 401 and "connection" not in headers  # the application's answer
    assert "API key" in body["message"]


def test_headers_over_the_limit_get_json_431(api_server):
    head = request_head("GET", "/", X_Filler="a" * limits.HEADER_MAX)
    status, _, body = exchange(api_server.port, head)
    assert status == 431
    assert body == {"message": f"the request headers are larger than {limits.HEADER_MAX} bytes"}


def test_a_malformed_request_gets_json_400(api_server):
    status, _, body = exchange(api_server.port, request_head("GET", "/", Content_Length="abc"))
    assert status == 400 and body == {"message": "bad request: Content-Length is invalid"}


def define_large_vms(zk, count: int) -> dict[str, str]:
    """`count` VMs with about 200 KB of XML each: their XML by name."""
    cluster.initialize(zk)
    add_hypervisor(zk, "node1", mem_total=1 << 20, mem_free=1 << 20)
    description = "<description>" + "d" * 200_000 + "</description>"
    xmls = {}
    for index in range(count):
        name = f"large{index}"
        xmls[name] = domain_xml(name, memory=64).replace("</name>", "</name>" + description)
        vm.define(zk, placement.Policy(), xmls[name], node="node1")
    return xmls


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_body_of_the_limit_and_large_answers_pass_whole(start_api, zk, tmp_path, tls):
    """Over TLS, records of 16 KiB arrive while the server reads 8 KiB at a time, and answers
    of megabytes, asked for all at once, meet a full socket buffer again and again."""
    section = tls_section(tmp_path) if tls else {"enabled": False}
    server = start_api(api={"tls": section})
    context = client_context(section) if tls else None
    if tls:
        wait_until_serving(server.url + "/", context)
    xmls = define_large_vms(zk, 8)
    junk = "x" * (limits.BODY_MAX - len('{"junk": ""}'))
    document = json.dumps({"junk": junk}).encode()
    assert len(document) == limits.BODY_MAX
    with connect(server.port, context) as sock:
        reader = sock.makefile("rb")
        for _ in range(2):  # twice on one connection: the first left nothing behind
            head = request_head(
                "POST", "/vm", server.key, Content_Type="application/json",
                Content_Length=str(len(document)),
            )  # fmt: skip
            sock.sendall(head + document)
            status, _, body = read_answer(reader)
            assert status == 400, body[:200]
            assert "unknown parameter 'junk'" in json.loads(body)["message"]  # all of it parsed
        deadline = time.monotonic() + 10
        while True:  # until the API's mirror has the last one
            sock.sendall(request_head("GET", "/vm/large7/xml", server.key))
            status, _, body = read_answer(reader)
            if status == 200:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        sock.sendall(b"".join(request_head("GET", f"/vm/{name}/xml", server.key) for name in xmls))
        for xml in xmls.values():
            status, _, body = read_answer(reader)
            assert status == 200 and json.loads(body)["xml"] == xml


def test_requests_sent_together_over_tls_are_all_answered(start_api, tmp_path):
    """Requests larger than one read, in one TLS record: what the SSL layer holds decrypted,
    which poll() cannot see, is read once the first request has been answered."""
    section = tls_section(tmp_path)
    server = start_api(api={"tls": section})
    context = client_context(section)
    wait_until_serving(server.url + "/", context)
    head = request_head("GET", "/", X_Filler="a" * 6000)
    with connect(server.port, context) as sock:
        sock.sendall(head * 2)
        reader = sock.makefile("rb")
        for _ in range(2):
            status, _, body = read_answer(reader)
            assert status == 200 and json.loads(body)["name"] == "pvc"


def test_a_long_poll_outlives_the_idle_timeout(api_server, zk):
    cluster.initialize(zk)
    add_hypervisor(zk, "node1")
    vm.define(zk, placement.Policy(), domain_xml("vm1"), node="node1")  # no daemon starts it
    timeout = limits.CONNECTION_IDLE_SECONDS + 3
    document = json.dumps({"state": "start", "wait": True, "timeout": timeout}).encode()
    head = request_head(
        "POST", "/vm/vm1/state", api_server.key, Content_Type="application/json",
        Content_Length=str(len(document)),
    )  # fmt: skip
    with connect(api_server.port) as sock:
        sock.settimeout(timeout + 10)
        sock.sendall(head + document)
        status, _, body = read_answer(sock.makefile("rb"))
    assert status == 202
    assert f"still on its way to start after {timeout:g} s" in json.loads(body)["message"]


def test_at_the_connection_limit_the_least_recently_active_idle_connections_make_room(
    tmp_path, zk_hosts, pvc_bin
):
    room = 20
    open_files = FILES_RESERVED + room * FILES_PER_CONNECTION
    port = free_port()
    config = write_config(
        tmp_path / "pvc.conf", zk_hosts,
        api={"listen_address": "127.0.0.1", "listen_port": port,
             "authentication": {"enabled": False}},
    )  # fmt: skip
    with (
        open(tmp_path / "api.log", "wb") as log,
        processes.running(
            [pvc_bin, "api", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files)),
        ) as server,
    ):
        wait_for_http(f"http://127.0.0.1:{port}/api/v1/", server)
        idle = []
        for _ in range(room + 10):
            idle.append(connect(port))
            time.sleep(0.01)  # a distinct moment of activity each
        status, _, body = exchange(port, request_head("GET", "/"))
        assert status == 200 and body["name"] == "pvc"
        for sock in idle[:10]:  # the oldest idle ones are closed: recv sees the end at once
            sock.settimeout(3)
            assert sock.recv(1) == b""
        idle[-1].sendall(request_head("GET", "/"))  # the newest still serve
        status, _, body = read_answer(idle[-1].makefile("rb"))
        assert status == 200 and json.loads(body)["name"] == "pvc"
        for sock in idle:
            sock.close()
