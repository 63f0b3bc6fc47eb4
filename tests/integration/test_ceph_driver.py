"""pvc.drivers.ceph against the session's real Ceph: monitor commands, Ceph's refusals as
CephError with its errno, and a Ceph that cannot be reached or refuses the key as one
CephUnavailable line within the configured timeout (never a hang)."""

import errno

import pytest

from pvc.drivers.ceph import Ceph, CephError, CephUnavailable, client_key


@pytest.fixture
def ceph(ceph_service):
    driver = Ceph(str(ceph_service.conf), "admin", str(ceph_service.keyring), 5)
    yield driver
    driver.close()


def test_monitor_commands_answer_json(ceph, ceph_service):
    assert ceph.command("health")["status"] in ("HEALTH_OK", "HEALTH_WARN")
    assert [osd["osd"] for osd in ceph.command("osd dump")["osds"]][:1] == [0]
    assert isinstance(ceph.command("osd blocklist ls"), list)  # answers "[...][]"


def test_a_refused_command_is_a_ceph_error_with_its_errno(ceph):
    with pytest.raises(CephError) as refused:
        ceph.command("no such command")
    assert refused.value.errno == errno.EINVAL
    assert "command not known" in refused.value.message


def test_the_client_address_is_the_one_the_cluster_sees(ceph, ceph_service):
    assert ceph.client_address() == ceph_service.address


def test_the_client_key_comes_from_the_keyring(ceph, ceph_service):
    key = ceph.client_key()
    assert key == client_key(str(ceph_service.keyring), "admin")
    assert len(key) == 40 and key.endswith("==")


def test_a_ceph_that_does_not_answer_fails_within_the_timeout(tmp_path, ceph_service):
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nmon_host = 127.0.0.1:9\n")  # nothing listens there
    driver = Ceph(str(conf), "admin", str(ceph_service.keyring), 1)
    with pytest.raises(CephUnavailable) as unavailable:
        driver.command("health")
    assert "\n" not in unavailable.value.message
    assert unavailable.value.http_status == 503


def test_a_wrong_key_is_refused_in_one_line(tmp_path, ceph_service):
    keyring = tmp_path / "keyring"
    keyring.write_text("[client.admin]\n\tkey = AQBXAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAA==\n")
    driver = Ceph(str(ceph_service.conf), "admin", str(keyring), 2)
    with pytest.raises(CephUnavailable, match="refused client.admin"):
        driver.command("health")


def test_a_keyring_without_the_client_is_unavailable(tmp_path):
    keyring = tmp_path / "keyring"
    keyring.write_text("[client.other]\n\tkey = x\n")
    with pytest.raises(CephUnavailable, match="has no key for client.admin"):
        client_key(str(keyring), "admin")
