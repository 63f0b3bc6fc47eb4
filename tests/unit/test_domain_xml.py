"""Domain XML validation: what pvc needs from libvirt XML, with the parser's own words."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        ("<network/>", "not a libvirt domain: its root is 'network'"),
        ("<" + "n" * 100_000 + "/>", "its root is 'nnnn[^,]{1,40}$"),
        (xml(name=""), "has no <name>"),
        (xml(name="bad/name"), "invalid VM name"),
        (xml(uuid="nope"), "is not a UUID"),
        (xml(memory=""), "has no <memory>"),
        (xml(memory="<memory unit='parsecs'>1</memory>"), "unknown memory unit"),
        (xml(vcpu="<vcpu>two</vcpu>"), "must be a whole number in ASCII digits"),
        (xml(vcpu="<vcpu>0</vcpu>"), "at least 1 MiB of memory and 1 vCPU"),
    ],
)
def test_bad_xml_says_why(text, message):
    with pytest.raises(InvalidInput, match=message):
        domain_xml.parse(text)


def test_renamed_changes_only_the_name():
    spec = domain_xml.parse(domain_xml.renamed(xml(), "vm2"))
    assert (spec.name, spec.uuid, spec.memory) == ("vm2", UUID, 2048)


@pytest.mark.parametrize(
    "text, message",
    [
        (xml(memory="<memory unit='MiB'>٥١٢</memory>"), "ASCII digits 0-9, not '٥١٢'"),
        (xml(vcpu="<vcpu>²</vcpu>"), "<vcpu> must be a whole number in ASCII digits"),
        (xml(memory="<memory>" + "9" * 400 + "</memory>"), "<memory> must be a whole number"),
        (xml(memory="<memory unit='EiB'>17</memory>"), "larger than libvirt can hold"),
        (xml(uuid="{" + UUID + "}"), "not a UUID: '{6a2f1e5c"),
        (xml(uuid="urn:uuid:" + UUID), "without braces"),
        ("<?xml version='1.0' encoding='latin-1'?>" + xml(), "encoding='latin-1', but pvc"),
        ("<?xml version='1.0' encoding=\"UTF-16\"?>" + xml(), "declare UTF-8, or no encoding"),
        ("<?xml version='1.0' encoding='bogus'?>" + xml(), "encoding='bogus'"),
        ("<?xml version='1.0' encoding='ascii'?>" + xml(name="café"), "encoding='ascii'"),
        (xml(name="x" * 1_100_000), "the domain XML is over 262144 bytes"),
        (xml(name="é" * 140_000), r"over 262144 bytes \(280\d+ in UTF-8\)"),
        (xml(name="x" * 64), "invalid VM name 'xxxxx"),
        (xml(name=UUID), "not in the form of a UUID"),
        ("<domain>\ud800</domain>", "not valid Unicode text"),
        (b"<domain/>", "must be text"),
    ],
)
def test_what_libvirt_or_zookeeper_would_refuse_is_refused_in_one_line(text, message):
    with pytest.raises(InvalidInput, match=message) as refused:
        domain_xml.parse(text)
    assert "\n" not in refused.value.message and len(refused.value.message) < 300


@pytest.mark.parametrize(
    "declaration",
    [
        "<?xml version='1.0'?>",
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<?xml version='1.0' encoding='utf8'?>",
        "<?xml version='1.0' encoding='US-ASCII'?>",
    ],
)
def test_a_true_declaration_is_taken(declaration):
    assert domain_xml.parse(declaration + xml()).name == "vm1"


def test_nesting_is_counted_without_recursion():
    deep = xml(vcpu="<vcpu>2</vcpu><description>" + "<a>" * 5000 + "</a>" * 5000 + "</description>")
    with pytest.raises(InvalidInput, match="nested deeper than 64 elements"):
        domain_xml.parse(deep)
    with pytest.raises(InvalidInput, match="nested deeper than 64 elements"):
        domain_xml.renamed(deep, "vm2")  # a stored XML from before the limit: 400, not 500
    fits = xml(vcpu="<vcpu>2</vcpu>" + "<a>" * 62 + "</a>" * 62)  # 64 with <domain> and <a>s
    assert domain_xml.parse(fits).vcpus == 2


def test_memory_in_every_libvirt_unit_is_whole_mib():
    def memory(unit, value):
        return domain_xml.parse(xml(memory=f"<memory unit='{unit}'>{value}</memory>")).memory

    assert memory("b", 2**30) == memory("KiB", 2**20) == memory("G", 1) == 1024
    assert memory("GB", 1) == 953  # 10^9 bytes, in whole MiB
    assert memory("TiB", 2) == 2 * 2**20


XML_PIECES = "<>/='\"?! &;#x0123456789ad-é\ud800\x00"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(XML_PIECES)), max_size=80))
def test_any_text_parses_or_is_refused_with_invalid_input(text):
    for candidate in (text, xml(name=text), xml(memory=f"<memory>{text}</memory>")):
        try:
            domain_xml.parse(candidate)
        except InvalidInput as refused:
            assert "\n" not in refused.message


def test_the_rbd_disks_are_the_volumes_in_order():
    disks = (
        "<devices><disk type='network' device='disk'><source protocol='rbd' name='vms/root'/>"
        "</disk><disk type='file'><source file='/x.img'/></disk>"
        "<disk type='network'><source protocol='nbd' name='other'/></disk>"
        "<disk type='network'><source protocol='rbd' name='vms/data'/></disk></devices>"
    )
    text = xml().replace("</domain>", disks + "</domain>")
    assert domain_xml.parse(text).volumes == ("vms/root", "vms/data")
    assert domain_xml.parse(xml()).volumes == ()
