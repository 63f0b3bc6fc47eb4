"""C bindings from Debian packages: present ones import, a missing one names its package."""

import pytest

from pvc import drivers
from pvc.errors import Unavailable


@pytest.mark.parametrize("name", ["libvirt", "rados", "rbd"])
def test_installed_bindings_import(name):
    assert drivers.import_binding(name).__name__ == name


def test_missing_binding_names_the_package(monkeypatch):
    monkeypatch.setitem(drivers.DEBIAN_PACKAGES, "pvc_no_such_binding", "python3-nothing")
    with pytest.raises(Unavailable, match="install the Debian package python3-nothing"):
        drivers.import_binding("pvc_no_such_binding")
