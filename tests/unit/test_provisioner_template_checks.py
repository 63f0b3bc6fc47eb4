"""pvc.ops.provisioner_template_checks: the patterns the API states agree with what the checks
accept (every text a pattern allows is a value the check takes), and the MAC addresses a
network template gives."""

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pvc.errors import InvalidInput
from pvc.ops import provisioner_template_checks as checks


@settings(max_examples=500, deadline=None)
@given(st.from_regex(checks.VNC_BIND_PATTERN, fullmatch=True))
def test_every_address_the_pattern_allows_is_an_address(text):
    assert checks.require_vnc_bind(text) == (str(ipaddress.ip_address(text)) if text else None)


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses())
def test_every_address_is_allowed_in_its_plain_form(address):
    assert re.fullmatch(checks.VNC_BIND_PATTERN, address.compressed)
    assert re.fullmatch(checks.VNC_BIND_PATTERN, address.exploded)


@pytest.mark.parametrize(
    "text", ["01.2.3.4", "1.2.3", "1:2:3:4:5:6:7:8:9", "1::2::3", "::ffff:1.2.3.4", "fe80::1%lo",
             "localhost", " 1.2.3.4"],
)  # fmt: skip
def test_other_addresses_are_refused(text):
    with pytest.raises(InvalidInput, match="an IP address"):
        checks.require_vnc_bind(text)


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(checks.MOUNTPOINT_PATTERN, fullmatch=True).filter(
        lambda text: len(text) <= checks.MOUNTPOINT_MAX
    )
)
def test_every_mountpoint_the_pattern_allows_is_plain(text):
    """(The API states the length bound, as maxLength, beside the pattern.)"""
    parts = text.split("/")[1:]
    assert text == "/" or all(part not in ("", ".", "..") for part in parts)
    assert checks.require_mountpoint(text) == text


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(checks.FILESYSTEM_ARGS_PATTERN, fullmatch=True).filter(
        lambda text: len(text) <= checks.FILESYSTEM_ARGS_MAX
    )
)
def test_filesystem_arguments_split_on_spaces_are_accepted(text):
    assert checks.require_filesystem_args(text.split()) == text.split()


@pytest.mark.parametrize(
    "template, vmid, netid, mac",
    [("{prefix}:ff:{vmid}:{netid}", 12, 1, "52:54:00:ff:0c:01"),
     ("{prefix}:ff:{vmid}:{netid}", 300, 0, "52:54:00:ff:2c:00"),
     ("02:AB:{netid}:{vmid}:00:01", 255, 2, "02:ab:02:ff:00:01")],
)  # fmt: skip
def test_mac_from_template(template, vmid, netid, mac):
    assert checks.require_mac_template(template) == template
    assert checks.mac_from_template(template, vmid, netid) == mac


@pytest.mark.parametrize("name, number", [("web12", 12), ("web", 0), ("db-0007", 7), ("9", 9)])
def test_vm_number_is_the_number_ending_the_name(name, number):
    assert checks.vm_number(name) == number
