"""pvc.drivers.libvirt.marked: the cluster's mark goes into a domain's <metadata>, replacing a
mark the XML brought along, and leaves the rest of the document as it was."""

import xml.etree.ElementTree as ET

from pvc.drivers.libvirt import MARK_NAMESPACE, marked

QEMU = "http://libvirt.org/schemas/domain/qemu/1.0"


def marks(xml: str) -> list[str]:
    root = ET.fromstring(xml)
    return [element.get("uuid") for element in root.iter(f"{{{MARK_NAMESPACE}}}cluster")]


def test_a_domain_without_metadata_gains_it():
    xml = marked("<domain type='kvm'><name>a</name></domain>", "c1")
    assert marks(xml) == ["c1"]
    assert ET.fromstring(xml).find("name").text == "a"


def test_a_mark_brought_along_is_replaced_and_other_metadata_stays():
    xml = (
        "<domain><name>a</name><metadata>"
        "<app:info xmlns:app='urn:app'>kept</app:info>"
        f"<old:cluster xmlns:old='{MARK_NAMESPACE}' uuid='other'/>"
        "</metadata></domain>"
    )
    result = marked(xml, "c1")
    assert marks(result) == ["c1"]
    assert ET.fromstring(result).find("metadata/{urn:app}info").text == "kept"


def test_prefixes_and_the_rest_of_the_document_are_kept():
    xml = (
        f"<domain type='kvm' xmlns:qemu='{QEMU}'><name>a</name>"
        "<qemu:commandline><qemu:arg value='-S'/></qemu:commandline></domain>"
    )
    result = marked(xml, "c1")
    assert '<qemu:commandline><qemu:arg value="-S"/></qemu:commandline>' in result
    assert f'xmlns:qemu="{QEMU}"' in result and 'type="kvm"' in result
