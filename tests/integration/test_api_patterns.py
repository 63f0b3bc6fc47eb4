"""User-supplied name patterns through the real API (dist/pvc api serve): a catastrophic
regular expression is refused with 400 after its time limit, and the API serves other
requests meanwhile."""

import threading
import time
import urllib.parse
import uuid

from pvc.ops import cluster
from tests.integration.test_api import call

CATASTROPHIC = "^(a+)+$"


def add_vm(zk, name: str) -> None:
    """A stopped VM's records, as a define writes them."""
    vm_uuid = str(uuid.uuid4())
    txn = zk.client.transaction()
    txn.create(f"/domains/{vm_uuid}", name.encode())
    for key in ("state", "node", "memory", "vcpus", "tags", "node_limit", "lastnode"):
        txn.create(f"/domains/{vm_uuid}/{key}", b"stop" if key == "state" else b"")
    txn.create(f"/names/domains/{name}", vm_uuid.encode())
    assert not any(isinstance(result, Exception) for result in txn.commit())


def test_a_catastrophic_regex_is_400_and_other_requests_are_served_meanwhile(api_server, zk):
    cluster.initialize(zk)
    add_vm(zk, "a" * 27 + "-x")
    add_vm(zk, "web1")
    deadline = time.monotonic() + 10  # written by another session: the API's mirror follows
    while len(call(api_server, "GET", "/vm")[1]) != 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    query = urllib.parse.urlencode({"match": CATASTROPHIC, "regex": "true"})
    slow: dict = {}
    served_meanwhile = []

    def pathological() -> None:
        slow["answer"] = call(api_server, "GET", f"/vm?{query}")

    thread = threading.Thread(target=pathological)
    thread.start()
    while thread.is_alive():
        status, vms = call(api_server, "GET", "/vm?match=web*")
        if thread.is_alive():
            served_meanwhile.append((status, tuple(vm["name"] for vm in vms)))
    thread.join()
    assert slow["answer"] == (
        400,
        {"message": "the regular expression took longer than 1 s to match every name; "
         "simplify it"},
    )  # fmt: skip
    assert served_meanwhile and set(served_meanwhile) == {(200, ("web1",))}
    # the API goes on matching regular expressions with a fresh worker
    status, vms = call(api_server, "GET", "/vm?" + urllib.parse.urlencode(
        {"match": "-x$", "regex": "true"}))  # fmt: skip
    assert status == 200 and [vm["name"] for vm in vms] == ["a" * 27 + "-x"]


def test_an_overlong_pattern_is_400(api_server, zk):
    cluster.initialize(zk)
    for query in ("/vm?match=", "/node?limit="):  # refused by the API's parameter check
        status, body = call(api_server, "GET", query + "a" * 300)
        assert status == 400 and "is longer than" in body["message"]
