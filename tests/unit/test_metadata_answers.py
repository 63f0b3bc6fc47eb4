"""What the metadata service answers an identified caller, path by path (pvc.node.metadata)."""

import pytest

from pvc.node.metadata import Caller, answer
from pvc.ops.network_records import Network

NETWORK = Network(vni=7, description="n", type="managed", domain="example.test")
CALLER = Caller(
    "0d1f4c5e-0000-4000-8000-000000000001", "web1", "10.7.0.5", "52:54:00:00:00:07", NETWORK
)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/latest/meta-data/instance-id", (200, b"0d1f4c5e-0000-4000-8000-000000000001\n")),
        ("/latest/meta-data/instance-id/", (200, b"0d1f4c5e-0000-4000-8000-000000000001\n")),
        ("/latest/meta-data/name?x=1", (200, b"web1\n")),
        ("/2009-04-04/meta-data/local-hostname", (200, b"web1.example.test\n")),
        ("/latest/meta-data/network", (200, b"7\n")),
        ("/latest/meta-data", (200, answer(None, CALLER, "/latest/meta-data/")[1])),
        ("/latest", (200, b"meta-data/\nuser-data\n")),
        ("/latest/user-data", (404, b"no user-data\n")),
        ("/latest/meta-data/../user-data", (404, b"not found\n")),
        ("/latest/meta-data/name/extra", (404, b"not found\n")),
        ("/2009-4-4/meta-data/name", (404, b"not found\n")),
        ("http://169.254.169.254/latest/meta-data/name", (404, b"not found\n")),
    ],
)
def test_answers_by_path(path, expected):
    assert answer(None, CALLER, path) == expected


def test_a_network_without_a_domain_gives_the_bare_name():
    bare = Caller(CALLER.uuid, "web1", CALLER.ip, CALLER.mac, Network(7, "n", "managed"))
    assert answer(None, bare, "/latest/meta-data/hostname") == (200, b"web1\n")
