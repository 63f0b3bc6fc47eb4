"""The metadata service (pvc.node.metadata) in a namespace standing for the primary, with
namespaces standing for VMs on the managed network's bridge, on a real Zookeeper: who may read
what, decided from the source address, the kernel's neighbour entry, the lease and the XML."""

import os
import socket
import time
import uuid

import pytest

from pvc.node.metadata import (
    META_DATA,
    PER_SOURCE,
    REQUEST_DEADLINE,
    WORKERS,
    MetadataService,
)
from pvc.ops import cluster as cluster_ops
from pvc.ops import network_records, provisioner_store
from pvc.ops.network_records import Network
from pvc.zk import schema
from pvc.zk.cache import CachedView, open_mirror
from tests.libvirt_nodes import firmware_domain_xml
from tests.network_rig import Segment, http_get_in, in_namespace, sh, wait_for_http_in

SLOT = int(os.environ.get("PVC_TEST_SLOT", "0"))
NET = f"10.202.{SLOT}"
URL = "http://169.254.169.254/latest"
MAC_A, MAC_B, MAC_C = "52:54:00:00:0a:01", "52:54:00:00:0b:01", "52:54:00:00:0c:01"
NETWORK = Network(
    vni=100,
    description="metadata test",
    type="managed",
    domain="meta.test",
    ip4_network=f"{NET}.0/24",
    ip4_gateway=f"{NET}.1",
    dhcp4=True,
    dhcp4_start=f"{NET}.100",
    dhcp4_end=f"{NET}.200",
)


@pytest.fixture
def rig(zk):
    """Network 100 with VM "vma" (a DHCP lease) and VM "vmb" (a reservation); namespaces `a`
    and `b` are their NICs, `c` a third party with its own MAC; the service runs in `host`."""
    cluster_ops.initialize(zk, name="metadata")
    vms = {"vma": (str(uuid.uuid4()), MAC_A), "vmb": (str(uuid.uuid4()), MAC_B)}
    records = network_records.values(NETWORK)
    records[("network.lease", "100", schema.mac_component(MAC_A))] = {
        "ip": f"{NET}.101", "hostname": "vma", "expiry": 0, "client_id": None,
    }  # fmt: skip
    records[("network.reservation", "100", schema.mac_component(MAC_B))] = {
        "ip": f"{NET}.20", "hostname": "vmb",
    }  # fmt: skip
    for name, (vm_uuid, mac) in vms.items():
        records[("domain", vm_uuid)] = name
        records[("domain.xml", vm_uuid)] = firmware_domain_xml(
            name, vm_uuid, nic="vmbr100", mac=mac
        )
    zk.write(records)
    prefix = f"pvcmd{SLOT}"
    segment = Segment(f"{prefix}-host", "vmbr100").create_host()
    names = {key: f"{prefix}-{key}" for key in ("a", "b", "c")}
    try:
        sh("ip", "-n", segment.host, "addr", "add", f"{NET}.1/24", "dev", "vmbr100")
        sh("ip", "-n", segment.host, "addr", "add", "169.254.169.254/32", "dev", "lo")
        segment.attach(names["a"], MAC_A, f"{NET}.101/24", f"{NET}.1")
        segment.attach(names["b"], MAC_B, f"{NET}.20/24", f"{NET}.1")
        segment.attach(names["c"], MAC_C, f"{NET}.150/24", f"{NET}.1")
        view = CachedView(zk, open_mirror(zk))
        service = MetadataService(view)
        with in_namespace(segment.host):
            service.start()  # its threads stay in the namespace
        wait_for_http_in(names["a"], f"{URL}/")
        yield segment, names, vms, service, view
        service.stop()
        view.mirror.close()
    finally:
        segment.destroy()


def test_a_vm_reads_its_own_metadata_by_lease_and_by_reservation(rig):
    _, names, vms, _, _ = rig
    expected = {
        "instance-id": vms["vma"][0],
        "name": "vma",
        "hostname": "vma.meta.test",
        "local-hostname": "vma.meta.test",
        "local-ipv4": f"{NET}.101",
        "mac": MAC_A,
        "network": "100",
    }
    for key, value in expected.items():
        assert http_get_in(names["a"], f"{URL}/meta-data/{key}") == (200, f"{value}\n"), key
    assert http_get_in(names["b"], f"{URL}/meta-data/instance-id") == (200, f"{vms['vmb'][0]}\n")
    dated = "http://169.254.169.254/2009-04-04/meta-data/name"  # cloud-init's EC2 version
    assert http_get_in(names["b"], dated) == (200, "vmb\n")


def test_listings_user_data_and_unknown_paths(rig):
    _, names, _, _, _ = rig
    listing = "".join(f"{key}\n" for key in META_DATA)
    answers = {
        "/": (200, "latest\n"),
        "/latest/": (200, "meta-data/\nuser-data\n"),
        "/latest/meta-data/": (200, listing),
        "/latest/user-data": (404, "no user-data\n"),
        "/latest/meta-data/profile": (404, "not found\n"),
        "/latest/meta-data/secret": (404, "not found\n"),
        "/old/meta-data/name": (404, "not found\n"),
    }
    for path, answer in answers.items():
        assert http_get_in(names["a"], f"http://169.254.169.254{path}") == answer, path
    assert META_DATA == (
        "instance-id", "name", "hostname", "local-hostname", "local-ipv4", "mac", "network",
        "profile",
    )  # fmt: skip


def add_profile(view: CachedView, name: str, userdata: str | None) -> None:
    """A profile naming only a userdata record (or nothing), as the records part stores it."""
    profile = {"type": "provisioner", "userdata": userdata, "arguments": {}}
    for field in ("system_template", "network_template", "storage_template", "script", "ova"):
        profile[field] = None
    provisioner_store.add(view, "profile", name, profile)


def test_the_profile_a_vm_was_built_from_is_in_its_metadata_without_userdata(rig):
    _, names, vms, _, view = rig
    add_profile(view, "bare", None)
    view.write({("domain.profile", vms["vmb"][0]): "bare"})
    assert http_get_in(names["b"], f"{URL}/meta-data/profile") == (200, "bare\n")
    assert http_get_in(names["b"], f"{URL}/user-data") == (404, "no user-data\n")  # none in it
    assert http_get_in(names["a"], f"{URL}/meta-data/profile") == (404, "not found\n")


def test_each_vm_reads_its_own_profiles_userdata_rendered_for_it(rig):
    _, names, vms, _, view = rig
    text = "#!/bin/sh\necho {{ vm_name }} {{vm_uuid}} {{ hostname }} {{ profile }}\n"
    provisioner_store.add(view, "userdata", "hello", {"text": text})
    add_profile(view, "web", "hello")
    view.write({("domain.profile", vms["vma"][0]): "web"})
    rendered = f"#!/bin/sh\necho vma {vms['vma'][0]} vma.meta.test web\n"
    assert http_get_in(names["a"], f"{URL}/user-data") == (200, rendered)
    assert http_get_in(names["a"], f"{URL}/meta-data/profile") == (200, "web\n")
    assert http_get_in(names["b"], f"{URL}/user-data") == (404, "no user-data\n")  # no profile
    status, body = http_get_in(names["c"], f"{URL}/user-data")  # no VM: not vma's either
    assert status == 403 and "vma" not in body and "echo" not in body
    provisioner_store.remove(view, "profile", "web")  # the VM outlives its profile
    assert http_get_in(names["a"], f"{URL}/user-data") == (404, "no user-data\n")


def test_a_caller_without_a_lease_is_refused_with_the_reason(rig):
    _, names, _, _, _ = rig
    status, body = http_get_in(names["c"], f"{URL}/meta-data/instance-id")
    assert status == 403
    assert body == f"not identified: no DHCP lease or reservation for {NET}.150 on network 100\n"


def test_a_vm_taking_another_vms_address_gets_none_of_its_data(rig):
    segment, names, vms, _, _ = rig
    sh("ip", "-n", names["a"], "link", "set", "eth0", "down")  # the victim is away
    sh("ip", "-n", names["c"], "addr", "flush", "dev", "eth0")
    sh("ip", "-n", names["c"], "addr", "add", f"{NET}.101/24", "dev", "eth0")
    sh("ip", "-n", names["c"], "route", "add", "default", "via", f"{NET}.1")
    sh("ip", "-n", segment.host, "neigh", "flush", "dev", "vmbr100")
    status, body = http_get_in(names["c"], f"{URL}/meta-data/instance-id")
    assert status == 403
    assert body == f"not identified: {NET}.101 is leased to another interface than {MAC_C}\n"
    assert vms["vma"][0] not in body


def test_a_leased_mac_that_no_vm_has_is_refused(rig):
    _, names, vms, _, view = rig
    xml = firmware_domain_xml("vmb", vms["vmb"][0], nic="vmbr101", mac=MAC_B)
    view.write({("domain.xml", vms["vmb"][0]): xml})  # its NIC moved to another bridge
    status, body = http_get_in(names["b"], f"{URL}/meta-data/instance-id")
    assert (status, body) == (403, f"not identified: no VM has a NIC with MAC {MAC_B} on vmbr100\n")


def test_stopped_service_refuses_connections_and_serves_again_when_started(rig):
    segment, names, vms, service, _ = rig
    service.stop()
    assert not service.running()
    with pytest.raises(OSError):
        http_get_in(names["a"], f"{URL}/meta-data/instance-id", timeout=3)
    with in_namespace(segment.host):
        service.start()
    assert service.running()
    answer = wait_for_http_in(names["a"], f"{URL}/meta-data/instance-id")
    assert answer == (200, f"{vms['vma'][0]}\n")


def _connect_from(namespace: str, count: int) -> list[socket.socket]:
    """`count` connections to the service from `namespace`, each with half a request line."""
    with in_namespace(namespace):
        held = [socket.create_connection(("169.254.169.254", 80), timeout=5) for _ in range(count)]
    for sock in held:
        sock.sendall(b"GET /latest/meta-data/")
    return held


def _closed_by_server(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_one_guest_holding_connections_leaves_workers_for_the_others(rig):
    _, names, vms, _, _ = rig
    started = time.monotonic()
    held = _connect_from(names["c"], WORKERS + 4)
    try:
        assert all(_closed_by_server(sock, 1.0) for sock in held[PER_SOURCE:])  # at once
        assert not any(_closed_by_server(sock, 0.1) for sock in held[:PER_SOURCE])
        answer = http_get_in(names["a"], f"{URL}/meta-data/instance-id")
        assert answer == (200, f"{vms['vma'][0]}\n")
        assert time.monotonic() - started < REQUEST_DEADLINE  # while c still held its four
    finally:
        for sock in held:
            sock.close()


def test_a_request_trickled_a_byte_at_a_time_is_cut_at_its_deadline(rig):
    _, names, vms, _, _ = rig
    (sock,) = _connect_from(names["c"], 1)
    started = time.monotonic()
    try:
        while not _closed_by_server(sock, 0.5):  # a byte every half second: no read times out
            assert time.monotonic() - started < REQUEST_DEADLINE + 5, "still open"
            sock.sendall(b"x")
    finally:
        sock.close()
    assert REQUEST_DEADLINE - 0.5 < time.monotonic() - started < REQUEST_DEADLINE + 2
    answer = http_get_in(names["a"], f"{URL}/meta-data/instance-id")
    assert answer == (200, f"{vms['vma'][0]}\n")
