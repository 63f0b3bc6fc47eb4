"""What the API stores is held to pvc.limits, through the real API on a real Zookeeper: text
that would pass Zookeeper's 1 MiB transaction limit (which drops the session's connection) or
that libvirt would refuse is a 400 naming the limit or the reason on one line, and the API's
Zookeeper session is still there afterwards."""

import pytest

from pvc import limits
from pvc.ops import cluster
from tests.conftest import fails
from tests.integration.test_api import call
from tests.integration.test_vm_ops import add_hypervisor, domain_xml

UUID = "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d001"
OTHER = "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d002"
MB = 1_000_000


@pytest.fixture
def vm1(api_server, zk):
    """An API on a cluster with hypervisor node1 and VM vm1 (UUID)."""
    cluster.initialize(zk)
    add_hypervisor(zk, "node1")
    status, answer = call(api_server, "POST", "/vm", {"xml": domain_xml("vm1", UUID)})
    assert status == 200, answer
    return api_server


def refused(server, method, path, body) -> str:
    """The one-line message of a 400 answer; the session still answers the next request."""
    status, answer = call(server, method, path, body)
    assert status == 400, answer
    assert "\n" not in answer["message"] and len(answer["message"]) <= limits.REASON_MAX
    assert call(server, "GET", "/vm/vm1")[0] == 200  # no 503: Zookeeper kept the session
    return answer["message"]


def _xml_of_size(size: int) -> str:
    description = f"<description>{'x' * size}</description>"
    return domain_xml("vm2", OTHER).replace("</domain>", description + "</domain>")


NODES = limits.NODE_LIMIT_MAX


@pytest.mark.parametrize(
    "method, path, body, message",
    [
        ("POST", "/vm", {"xml": _xml_of_size(1_200_000)}, f"larger than {limits.XML_MAX} bytes"),
        ("PUT", "/vm/vm1", {"xml": _xml_of_size(1_200_000)}, f"larger than {limits.XML_MAX} bytes"),
        ("POST", "/vm", {"xml": domain_xml("n" * 100_000, OTHER)}, f"1 to {limits.NAME_MAX}"),
        ("POST", "/vm/vm1/rename", {"new_name": "n" * 1_100_000}, f"longer than {limits.NAME_MAX}"),
        ("POST", "/vm/vm1/tags", {"add": "t" * MB}, "'add' is longer than"),
        ("POST", "/vm/vm1/tags", {"add": ",".join(f"t{i}" for i in range(MB // 7))},
         "'add' is longer than"),
        ("POST", "/vm/vm1/tags", {"add": ",".join(f"t{i}" for i in range(limits.TAGS_MAX + 1))},
         f"at most {limits.TAGS_MAX}"),
        ("POST", "/vm/vm1/meta", {"limit": ",".join(f"node{i}" for i in range(MB // 9))},
         "'limit' is longer than"),
        ("POST", "/vm/vm1/meta", {"limit": ",".join(f"n{i}" for i in range(NODES + 1))},
         f"at most {NODES}"),
        ("POST", "/vm/vm1/meta", {"limit": "n" * MB}, "'limit' is longer than"),
        ("POST", "/vm/vm1/meta", {"selector": "s" * MB}, "'selector' must be one of"),
        ("POST", "/vm", {"xml": domain_xml("vm2", OTHER), "tags": "t" * MB},
         "'tags' is longer than"),
        ("POST", "/vm", {"xml": domain_xml("vm2", OTHER), "node": "n" * MB},
         f"'node' is longer than {limits.NAME_MAX}"),
        ("POST", "/vm/vm1/node", {"action": "move", "node": "n" * MB},
         f"'node' is longer than {limits.NAME_MAX}"),
    ],
)  # fmt: skip
def test_oversized_text_is_400_naming_the_limit(vm1, method, path, body, message):
    assert message in refused(vm1, method, path, body)


def test_the_largest_accepted_values_are_stored(vm1, zk):
    big = _xml_of_size(limits.XML_MAX - len(_xml_of_size(0)))
    assert len(big.encode()) == limits.XML_MAX
    assert call(vm1, "POST", "/vm", {"xml": big})[0] == 200
    tags = ",".join(f"{i:02d}" + "t" * (limits.TAG_MAX - 2) for i in range(limits.TAGS_MAX))
    assert call(vm1, "POST", "/vm/vm1/tags", {"add": tags})[0] == 200
    nodes = ",".join(f"{i:03d}" + "n" * (limits.NAME_MAX - 3) for i in range(limits.NODE_LIMIT_MAX))
    assert call(vm1, "POST", "/vm/vm1/meta", {"limit": nodes})[0] == 200
    assert len(zk.read(("domain.tags", UUID))) == limits.TAGS_MAX
    assert len(zk.read(("domain.node_limit", UUID))) == limits.NODE_LIMIT_MAX


ARABIC_MEMORY = domain_xml("vm2", OTHER).replace(">128<", ">١٢٨<")
BRACED_UUID = domain_xml("vm2", "{" + OTHER + "}")
FALSE_ENCODING = "<?xml version='1.0' encoding='UTF-16'?>" + domain_xml("vm2", OTHER)
BAD_MAC = domain_xml("vm2", OTHER).replace(
    "</domain>",
    "<devices><interface type='bridge'><mac address='zz:54:00:12:34:56'/>"
    "<source bridge='br0'/></interface></devices></domain>",
)


@pytest.mark.parametrize(
    "xml, message",
    [
        (ARABIC_MEMORY, "<memory> must be a whole number in ASCII digits 0-9, not '١٢٨'"),
        (BRACED_UUID, "the domain XML's <uuid> is not a UUID: '{0b6b2f34"),
        (FALSE_ENCODING, "the XML declaration says encoding='UTF-16', but pvc takes"),
        (BAD_MAC, "libvirt refuses the domain XML: XML document failed to validate"),
    ],
)
def test_xml_libvirt_would_refuse_is_400_in_one_line(vm1, xml, message):
    assert message in refused(vm1, "POST", "/vm", {"xml": xml})
    as_vm1 = xml.replace("vm2", "vm1").replace(OTHER, UUID)
    assert message in refused(vm1, "PUT", "/vm/vm1", {"xml": as_vm1})


def test_cli_define_of_xml_libvirt_would_refuse_is_one_line(vm1, run_pvc, tmp_path):
    path = tmp_path / "vm2.xml"
    path.write_text(ARABIC_MEMORY)
    line = fails(run_pvc("--config", str(vm1.config_path), "vm", "define", str(path)))
    assert "ASCII digits" in line


def test_renaming_a_vm_whose_stored_xml_is_too_deep_is_400(vm1, zk):
    deep = domain_xml("vm1", UUID).replace("</domain>", "<a>" * 5000 + "</a>" * 5000 + "</domain>")
    zk.write({("domain.xml", UUID): deep})  # as an older pvc stored it
    message = refused(vm1, "POST", "/vm/vm1/rename", {"new_name": "vm9"})
    assert f"nested deeper than {limits.XML_DEPTH_MAX} elements" in message
    assert zk.read(("domain", UUID)) == "vm1"
