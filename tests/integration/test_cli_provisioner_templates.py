"""`pvc provisioner template` run as the built dist/pvc against a real API and Zookeeper:
tables an admin can read, JSON output, and one readable line on a refusal (exit 1 for a
refused operation, 2 for a command used wrongly)."""

import json

import pytest

from pvc.ops import cluster, provisioner_store
from tests.conftest import fails, ok


@pytest.fixture
def pvc(run_pvc, api_server, zk):
    cluster.initialize(zk)

    def run(*args: str, **kwargs):
        return run_pvc("--config", str(api_server.config_path), "provisioner", "template", *args,
                       **kwargs)  # fmt: skip

    return run


def as_json(result):
    return json.loads(ok(result))


def test_system_templates(pvc):
    out = ok(pvc("system", "add", "small", "--vcpus", "2", "--memory", "1024", "--serial",
                 "--node-limit", "n1,n2", "--node-selector", "mem"))  # fmt: skip
    assert out.strip() == "system template 'small' added"
    ok(pvc("system", "add", "big", "--vcpus", "16", "--memory", "65536", "--vnc", "--vnc-bind",
           "::", "--migration-method", "shutdown", "--node-autostart"))  # fmt: skip
    lines = ok(pvc("system", "list")).splitlines()
    assert lines[0].split() == ["NAME", "VCPUS", "MEMORY", "SERIAL", "VNC", "VNC", "BIND", "NODE",
                                "LIMIT", "SELECTOR", "AUTOSTART", "MIGRATION"]  # fmt: skip
    assert lines[1].split() == ["big", "16", "64G", "no", "yes", "::", "-", "-", "yes",
                                "shutdown"]  # fmt: skip
    assert lines[2].split() == ["small", "2", "1G", "yes", "no", "-", "n1,n2", "mem", "no",
                                "live"]  # fmt: skip
    info = ok(pvc("system", "info", "small"))
    assert "node selector:     mem" in info and "memory:            1G" in info

    out = ok(pvc("system", "modify", "small", "--vcpus", "4", "--no-serial", "--node-limit", ""))
    assert out.strip() == "system template 'small' modified"
    small = as_json(pvc("system", "info", "small", "-f", "json"))
    changed = (small["vcpus"], small["serial"], small["node_limit"], small["memory"])
    assert changed == (4, False, [], 1024)
    assert [t["name"] for t in as_json(pvc("system", "list", "sma", "-f", "json"))] == ["small"]
    assert fails(pvc("system", "remove", "big", input="n\n")).endswith("(y/N) pvc: not removed")
    assert ok(pvc("system", "remove", "big", "--yes")).strip() == "system template 'big' removed"
    assert [t["name"] for t in as_json(pvc("system", "list", "-f", "json"))] == ["small"]


def test_network_templates(pvc):
    out = ok(pvc("network", "add", "lan", "--mac-template", "{prefix}:ff:{vmid}:{netid}",
                 "--vni", "100", "--vni", "200"))  # fmt: skip
    assert out.strip() == "network template 'lan' added"
    out = ok(pvc("network", "vni", "add", "lan", "300"))
    assert out.strip() == "network 300 added to network template 'lan' (NIC 3)"
    out = ok(pvc("network", "vni", "remove", "lan", "100"))
    assert out.strip() == "network 100 removed from network template 'lan'"
    ok(pvc("network", "add", "plain"))
    lines = ok(pvc("network", "list")).splitlines()
    assert lines[0].split() == ["NAME", "MAC", "TEMPLATE", "NETWORKS"]
    assert lines[1].split() == ["lan", "{prefix}:ff:{vmid}:{netid}", "200,", "300"]
    assert lines[2].split() == ["plain", "-", "-"]
    info = ok(pvc("network", "info", "plain"))
    assert "mac template:  random addresses" in info
    lan = as_json(pvc("network", "info", "lan", "-f", "json-pretty"))
    assert lan["networks"] == [200, 300] and lan["profiles"] == []
    assert ok(pvc("network", "remove", "plain", "-y")).strip() == (
        "network template 'plain' removed"
    )


def test_storage_templates(pvc):
    assert ok(pvc("storage", "add", "web")).strip() == "storage template 'web' added"
    out = ok(pvc("storage", "disk", "add", "web", "vda", "--pool", "vms", "--source-volume",
                 "base", "--mountpoint", "/"))  # fmt: skip
    assert out.strip() == "disk vda added to storage template 'web'"
    ok(pvc("storage", "disk", "add", "web", "vdb", "--pool", "vms", "--size", "2G", "--filesystem",
           "ext4", "--fsarg", "-L", "--fsarg", "data", "--mountpoint", "/srv"))  # fmt: skip
    ok(pvc("storage", "add", "empty"))
    lines = ok(pvc("storage", "list")).splitlines()
    assert lines[0].split() == ["NAME", "DISK", "POOL", "SIZE", "SOURCE", "VOLUME", "FILESYSTEM",
                                "MKFS", "ARGS", "MOUNTPOINT"]  # fmt: skip
    assert lines[1].split() == ["empty", "-", "-", "-", "-", "-", "-", "-"]
    assert lines[2].split() == ["web", "vda", "vms", "-", "base", "-", "-", "/"]
    assert lines[3].split() == ["web", "vdb", "vms", "2G", "-", "ext4", "-L", "data", "/srv"]
    info = ok(pvc("storage", "info", "web"))
    assert info.startswith("name:     web\nused by:  -\n\nDISK")
    out = ok(pvc("storage", "disk", "remove", "web", "vdb"))
    assert out.strip() == "disk vdb removed from storage template 'web'"
    disks = as_json(pvc("storage", "info", "web", "-f", "json"))["disks"]
    assert [d["disk_id"] for d in disks] == ["vda"]


def test_every_template_in_one_list(pvc):
    assert ok(pvc("list")).splitlines() == [
        "System templates:", "no system templates", "",
        "Network templates:", "no network templates", "",
        "Storage templates:", "no storage templates",
    ]  # fmt: skip
    ok(pvc("system", "add", "web-s", "--vcpus", "1", "--memory", "256"))
    ok(pvc("storage", "add", "db"))
    listed = as_json(pvc("list", "web", "-f", "json"))
    assert {kind: [t["name"] for t in found] for kind, found in listed.items()} == {
        "system": ["web-s"], "network": [], "storage": []
    }  # fmt: skip


def test_a_template_a_profile_uses_is_kept(pvc, zk):
    ok(pvc("network", "add", "lan", "--vni", "100"))
    provisioner_store.add(zk, "profile", "web", {"type": "provisioner", "network_template": "lan"})
    line = fails(pvc("network", "remove", "lan", "--yes"))
    assert line == "pvc: network template 'lan' is used by profile web"
    assert "used by:       web" in ok(pvc("network", "info", "lan"))


@pytest.mark.parametrize(
    "args, code, line",
    [
        (("system", "add", "x", "--vcpus", "2"), 2,
         "pvc: invalid arguments for 'pvc provisioner template'; see "
         "'pvc provisioner template --help'"),
        (("system", "add", "x", "--vcpus", "two", "--memory", "64"), 2,
         "pvc: --vcpus must be a whole number, not 'two'"),
        (("system", "add", "x", "--vcpus", "0", "--memory", "64"), 1,
         "pvc: parameter 'vcpus' must be at least 1 and at most 256"),
        (("system", "add", "x", "--vcpus", "1", "--memory", "64", "--vnc-bind", "myhost"), 1,
         "pvc: invalid VNC bind address 'myhost': an IP address"),
        (("system", "modify", "nosuch", "--vcpus", "2"), 1,
         "pvc: system template 'nosuch' does not exist"),
        (("system", "modify", "x", "--serial", "--no-serial"), 2,
         "pvc: invalid arguments for 'pvc provisioner template'; see "
         "'pvc provisioner template --help'"),
        (("system", "info", "a b"), 1,
         "pvc: invalid template name 'a b': letters, digits, '.', '-' and '_', starting with a "
         "letter or digit; at most 63 characters; not in the form of a UUID"),
        (("network", "add", "x", "--mac-template", "{prefix}:{vm}:00:00"), 1,
         "pvc: invalid MAC template '{prefix}:{vm}:00:00': unknown placeholder '{vm}' (use "
         "{prefix}, {vmid} or {netid}, as they are)"),
        (("network", "add", "x", "--vni", "100", "--vni", "100"), 1,
         "pvc: network 100 is given twice: a VM has one NIC per network"),
        (("network", "add", "x", "--vni", "ten"), 2,
         "pvc: --vni must be a whole number, not 'ten'"),
        (("network", "vni", "add", "nosuch", "100"), 1,
         "pvc: network template 'nosuch' does not exist"),
        (("storage", "disk", "add", "web", "vda", "--pool", "vms"), 1,
         "pvc: disk vda: give a size (a new volume) or a source volume (a clone)"),
        (("storage", "disk", "add", "web", "vda", "--pool", "vms", "--size", "1G",
          "--filesystem", "ext4", "--fsarg", "-L my"), 2,
         "pvc: --fsarg '-L my': one argument for mkfs, without spaces"),
        (("storage", "disk", "add", "web", "vda", "--pool", "vms", "--size", "10"), 1,
         "pvc: invalid size '10': give a whole number and a unit B, K, M, G, T or P (binary; "
         "optional i or iB), e.g. 10G, 512M, 4096B"),
        (("storage", "disk", "add", "web", "vda", "--pool", "vms", "--size", "1G",
          "--mountpoint", "/data"), 1,
         "pvc: disk vda: a mountpoint needs a filesystem (a new one, or a source volume's)"),
        (("storage", "disk", "remove", "web", "vdq"), 1,
         "pvc: storage template 'web' has no disk 'vdq'"),
        (("storage", "info", "web", "-f", "yaml"), 2,
         "pvc: unknown output format 'yaml'; use one of pretty, json, json-pretty"),
    ],
)  # fmt: skip
def test_refusals_are_one_line(pvc, args, code, line):
    ok(pvc("storage", "add", "web"))
    assert fails(pvc(*args), code) == line
