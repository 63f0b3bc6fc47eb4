"""libvirt's own judgement of a domain's XML, before pvc stores it.

`refusal(xml)` defines the domain, with VIR_DOMAIN_DEFINE_VALIDATE, on a private and empty
in-process connection of libvirt's test driver, then undefines it: libvirt checks the XML
against its RNG schema (domain.rng) and its own parser's rules (a duplicated disk target, an
<os> without <type>), the checks any hypervisor driver makes at define. It answers libvirt's
reason, or None when the XML passes.

Only XML errors count: an error about what the test driver itself cannot do (its capabilities
are not the nodes') is no reason to refuse, so it is logged and the XML passes. Where the
binding (python3-libvirt) is missing or the test driver does not open, the XML passes too, and
this is logged once: pvc's own checks (pvc.ops.domain_xml.parse) still apply.
"""

import atexit
import functools
import logging
import tempfile
import threading
from types import ModuleType
from typing import Any

from pvc.drivers import import_binding
from pvc.errors import Unavailable

log = logging.getLogger("pvc.libvirt")
_XML_ERRORS = ("VIR_ERR_XML_ERROR", "VIR_ERR_XML_DETAIL", "VIR_ERR_XML_INVALID_SCHEMA")
_lock = threading.Lock()  # one domain defined at a time: two with one UUID would clash


@functools.cache
def _connection() -> tuple[ModuleType, Any] | None:
    """The binding and a test-driver connection of this process alone (test:///default is
    shared within a process, and has a domain of its own); None where libvirt is not at hand."""
    try:
        libvirt = import_binding("libvirt")
    except Unavailable as exc:
        log.warning("domain XML is checked by pvc's own rules only: %s", exc.message)
        return None
    libvirt.registerErrorHandler(lambda *_: None, None)
    with tempfile.NamedTemporaryFile("w", prefix="pvc-validate-", suffix=".xml") as node:
        node.write("<node/>")  # a test-driver node without domains, read once at open
        node.flush()
        try:
            connection = libvirt.open(f"test://{node.name}")
        except libvirt.libvirtError as exc:
            log.warning("domain XML is checked by pvc's own rules only: %s", exc)
            return None
    atexit.register(connection.close)  # before the interpreter unloads the binding
    return libvirt, connection


def refusal(xml: str) -> str | None:
    """libvirt's reason to refuse the domain `xml`, or None (see the module docstring)."""
    with _lock:
        found = _connection()
        if found is None:
            return None
        libvirt, connection = found
        try:
            connection.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE).undefine()
        except libvirt.libvirtError as exc:
            xml_errors = {getattr(libvirt, name, None) for name in _XML_ERRORS}
            if exc.get_error_code() in xml_errors:
                return str(exc)
            log.info("libvirt's test driver cannot judge a domain XML, passed: %s", exc)
    return None
