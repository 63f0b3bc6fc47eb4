"""What the metadata service answers an identified caller, path by path (pvc.node.metadata),
and the user-data it serves: the VM's profile's userdata, rendered for the VM."""

from typing import Any

import pytest

from pvc.node.metadata import Caller, answer
from pvc.ops import provisioner_store
from pvc.ops.network_records import Network

NETWORK = Network(vni=7, description="n", type="managed", domain="example.test")
CALLER = Caller(
    "0d1f4c5e-0000-4000-8000-000000000001", "web1", "10.7.0.5", "52:54:00:00:00:07", NETWORK
)


class Records(dict):
    """Records by key, read as the service reads its in-memory view (`read`: None if none)."""

    def read(self, key: Any) -> Any:
        return self.get(key)


NO_RECORDS = Records()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/latest/meta-data/instance-id", (200, b"0d1f4c5e-0000-4000-8000-000000000001\n")),
        ("/latest/meta-data/instance-id/", (200, b"0d1f4c5e-0000-4000-8000-000000000001\n")),
        ("/latest/meta-data/name?x=1", (200, b"web1\n")),
        ("/2009-04-04/meta-data/local-hostname", (200, b"web1.example.test\n")),
        ("/latest/meta-data/network", (200, b"7\n")),
        ("/latest/meta-data", (200, answer(NO_RECORDS, CALLER, "/latest/meta-data/")[1])),
        ("/latest", (200, b"meta-data/\nuser-data\n")),
        ("/latest/user-data", (404, b"no user-data\n")),
        ("/latest/meta-data/profile", (404, b"not found\n")),
        ("/latest/meta-data/../user-data", (404, b"not found\n")),
        ("/latest/meta-data/name/extra", (404, b"not found\n")),
        ("/2009-4-4/meta-data/name", (404, b"not found\n")),
        ("http://169.254.169.254/latest/meta-data/name", (404, b"not found\n")),
    ],
)
def test_answers_by_path(path, expected):
    assert answer(NO_RECORDS, CALLER, path) == expected


def test_a_network_without_a_domain_gives_the_bare_name():
    bare = Caller(CALLER.uuid, "web1", CALLER.ip, CALLER.mac, Network(7, "n", "managed"))
    assert answer(NO_RECORDS, bare, "/latest/meta-data/hostname") == (200, b"web1\n")


def profiled(userdata: str | None = "boot", text: str = "#!/bin/sh\n") -> Records:
    """Records where CALLER's VM was built from profile "web", naming `userdata`."""
    return Records({
        ("domain", CALLER.uuid): CALLER.name,
        ("domain.profile", CALLER.uuid): "web",
        provisioner_store.key("profile", "web"): {"name": "web", "userdata": userdata},
        provisioner_store.key("userdata", "boot"): {"name": "boot", "text": text},
    })  # fmt: skip


def test_user_data_is_the_profiles_userdata_rendered_for_the_vm():
    text = "#!/bin/sh\necho {{ vm_name }} {{vm_uuid}} {{ hostname }} {{ profile }}\n"
    expected = f"#!/bin/sh\necho web1 {CALLER.uuid} web1.example.test web\n".encode()
    assert answer(profiled(text=text), CALLER, "/latest/user-data") == (200, expected)
    assert answer(profiled(), CALLER, "/latest/meta-data/profile") == (200, b"web\n")


def test_no_user_data_without_a_profile_its_userdata_or_their_records():
    no_userdata = profiled(userdata=None)
    userdata_gone = profiled()
    del userdata_gone[provisioner_store.key("userdata", "boot")]
    profile_gone = profiled()
    del profile_gone[provisioner_store.key("profile", "web")]
    for records in (NO_RECORDS, no_userdata, userdata_gone, profile_gone):
        assert answer(records, CALLER, "/latest/user-data") == (404, b"no user-data\n")
    assert answer(profile_gone, CALLER, "/latest/meta-data/profile") == (200, b"web\n")
