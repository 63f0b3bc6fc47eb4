"""Domain XML validation: what pvc needs from libvirt XML, with the parser's own words."""

import pytest

from pvc.errors import InvalidInput
from pvc.ops import domain_xml

UUID = "6a2f1e5c-7f5e-4f0b-9d62-0b4c6f1d2e3a"


def xml(name="vm1", uuid=UUID, memory="<memory unit='GiB'>2</memory>", vcpu="<vcpu>2</vcpu>"):
    return f"<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>{memory}{vcpu}</domain>"


def test_parse_reads_name_uuid_memory_vcpus():
    assert domain_xml.parse(xml()) == domain_xml.DomainSpec("vm1", UUID, 2048, 2)
    assert domain_xml.parse(xml(memory="<memory>131072</memory>")).memory == 128  # KiB


@pytest.mark.parametrize(
    "text, message",
    [
        ("<domain><name>x", "does not parse: no element found: line 1, column 15"),
        ("<network/>", "not a libvirt domain"),
        (xml(name=""), "has no <name>"),
        (xml(name="bad/name"), "invalid VM name"),
        (xml(uuid="nope"), "is not a UUID"),
        (xml(memory=""), "has no <memory>"),
        (xml(memory="<memory unit='parsecs'>1</memory>"), "unknown memory unit"),
        (xml(vcpu="<vcpu>two</vcpu>"), "whole numbers"),
        (xml(vcpu="<vcpu>0</vcpu>"), "at least 1 MiB of memory and 1 vCPU"),
    ],
)
def test_bad_xml_says_why(text, message):
    with pytest.raises(InvalidInput, match=message):
        domain_xml.parse(text)


def test_renamed_changes_only_the_name():
    spec = domain_xml.parse(domain_xml.renamed(xml(), "vm2"))
    assert (spec.name, spec.uuid, spec.memory) == ("vm2", UUID, 2048)
