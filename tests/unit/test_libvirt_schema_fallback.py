"""pvc.drivers.libvirt_schema where the libvirt binding cannot be imported: the XML passes to
pvc's own checks, and the missing binding is logged once (the real validation is tested in
tests/integration/test_libvirt_schema.py)."""

import logging
import sys

import pytest

from pvc.drivers import libvirt_schema
from pvc.errors import InvalidInput
from pvc.ops import domain_xml

XML = (
    "<domain type='kvm'><name>vm1</name><uuid>6a2f1e5c-7f5e-4f0b-9d62-0b4c6f1d2e3a</uuid>"
    "<memory unit='MiB'>128</memory><vcpu>1</vcpu><devices><bogus/></devices></domain>"
)


@pytest.fixture
def no_binding(monkeypatch):
    monkeypatch.setitem(sys.modules, "libvirt", None)  # import libvirt raises ImportError
    libvirt_schema._connection.cache_clear()
    yield
    libvirt_schema._connection.cache_clear()


def test_without_the_binding_the_xml_passes_and_that_is_logged_once(no_binding, caplog):
    with caplog.at_level(logging.WARNING, logger="pvc.libvirt"):
        assert libvirt_schema.refusal(XML) is None
        assert libvirt_schema.refusal(XML) is None
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "python3-libvirt" in warnings[0]


def test_without_the_binding_pvc_own_checks_still_refuse(no_binding):
    assert domain_xml.checked(XML).name == "vm1"
    with pytest.raises(InvalidInput, match="ASCII digits"):
        domain_xml.checked(XML.replace(">128<", ">١٢٨<"))
