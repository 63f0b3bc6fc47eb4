"""The connection store: file modes, add/replace/remove, and "local" from the node config."""

import json
import os
import stat

import pytest
import yaml

from pvc.cli import connections
from pvc.cli.connection import mask
from pvc.cli.connections import Connection
from pvc.errors import ConfigError, NotFound


@pytest.fixture
def client_dir(tmp_path, monkeypatch):
    folder = tmp_path / "client"
    monkeypatch.setenv("PVC_CLIENT_DIR", str(folder))
    monkeypatch.delenv("PVC_CONNECTION", raising=False)
    monkeypatch.delenv("PVC_CONFIG", raising=False)
    return folder


def node_config(path, **api):
    document = {"node": {"name": "node1"}, "cluster": {"coordinators": ["node1"]}, "api": api}
    path.write_text(yaml.safe_dump(document))
    return str(path)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_is_private_file_in_private_folder(client_dir):
    connections.add(Connection("prod", "10.0.0.1", api_key="secret"))
    assert mode(client_dir) == 0o700
    assert mode(client_dir / "pvc.json") == 0o600
    assert [p.name for p in client_dir.iterdir()] == ["pvc.json"]  # no temporary file left


def test_store_created_0600_despite_permissive_umask(client_dir):
    old = os.umask(0)
    try:
        connections.add(Connection("prod", "10.0.0.1"))
    finally:
        os.umask(old)
    assert mode(client_dir / "pvc.json") == 0o600


def test_add_then_load_round_trips_every_field(client_dir):
    conn = Connection("prod", "10.0.0.1", 8443, ssl=True, api_key="k" * 16, description="main")
    assert connections.add(conn) is False
    assert connections.load_stored() == {"prod": conn}
    stored = json.loads((client_dir / "pvc.json").read_text())
    assert stored["connections"]["prod"]["api_key"] == "k" * 16


def test_add_existing_name_replaces_it(client_dir):
    connections.add(Connection("prod", "10.0.0.1"))
    connections.add(Connection("test", "10.0.0.9"))
    assert connections.add(Connection("prod", "10.0.0.2", 7000)) is True
    stored = connections.load_stored()
    assert stored["prod"] == Connection("prod", "10.0.0.2", 7000)
    assert sorted(stored) == ["prod", "test"]


def test_remove_forgets_only_that_connection(client_dir):
    connections.add(Connection("prod", "10.0.0.1"))
    connections.add(Connection("test", "10.0.0.9"))
    connections.remove("prod")
    assert list(connections.load_stored()) == ["test"]


def test_remove_unknown_is_not_found(client_dir):
    with pytest.raises(NotFound, match="no connection named 'ghost'"):
        connections.remove("ghost")


def test_missing_store_is_empty(client_dir):
    assert connections.load_stored() == {}
    assert not client_dir.exists()


def test_malformed_store_is_one_config_error(client_dir):
    client_dir.mkdir()
    (client_dir / "pvc.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is malformed"):
        connections.load_stored()


def test_url_brackets_ipv6_and_follows_scheme():
    assert Connection("a", "10.0.0.1").url == "http://10.0.0.1:7370/api/v1"
    assert Connection("a", "fd00::1", 443, ssl=True).url == "https://[fd00::1]:443/api/v1"


def test_local_from_config_maps_wildcard_tls_and_first_key(tmp_path):
    config = node_config(
        tmp_path / "pvc.conf",
        listen_address="0.0.0.0",
        listen_port=7400,
        authentication={"enabled": True, "keys": [{"key": "first"}, {"key": "second"}]},
        tls={"enabled": True, "cert_file": "/c.pem", "key_file": "/k.pem"},
    )
    local = connections.local_from_config(config)
    assert local.url == "https://127.0.0.1:7400/api/v1"
    assert local.api_key == "first"
    assert local.name == "local"


def test_local_from_config_without_auth_sends_no_key(tmp_path):
    config = node_config(
        tmp_path / "pvc.conf",
        listen_address="10.1.1.1",
        authentication={"enabled": False, "keys": [{"key": "unused"}]},
    )
    local = connections.local_from_config(config)
    assert (local.address, local.port, local.ssl, local.api_key) == ("10.1.1.1", 7370, False, None)


def test_resolve_prefers_name_then_environment_then_local(client_dir, tmp_path, monkeypatch):
    config = node_config(tmp_path / "pvc.conf", authentication={"enabled": False})
    connections.add(Connection("prod", "10.0.0.1"))
    connections.add(Connection("test", "10.0.0.9"))
    assert connections.resolve(None, config).address == "127.0.0.1"
    monkeypatch.setenv("PVC_CONNECTION", "test")
    assert connections.resolve(None, config).name == "test"
    assert connections.resolve("prod", config).name == "prod"


def test_stored_local_overrides_node_config(client_dir, tmp_path):
    config = node_config(tmp_path / "pvc.conf", authentication={"enabled": False})
    connections.add(Connection("local", "10.9.9.9"))
    assert connections.resolve(None, config).address == "10.9.9.9"


def test_resolve_unknown_name_is_not_found(client_dir):
    with pytest.raises(NotFound, match="no connection named 'nope'"):
        connections.resolve("nope", None)


def test_resolve_local_without_config_says_how_to_fix(client_dir, tmp_path):
    with pytest.raises(ConfigError, match="pvc connection add") as caught:
        connections.resolve(None, str(tmp_path / "missing.conf"))
    assert "missing.conf does not exist" in caught.value.message


def test_known_adds_local_only_when_config_loads(client_dir, tmp_path):
    connections.add(Connection("prod", "10.0.0.1"))
    assert list(connections.known(str(tmp_path / "missing.conf"))) == ["prod"]
    config = node_config(tmp_path / "pvc.conf", authentication={"enabled": False})
    assert list(connections.known(config)) == ["local", "prod"]


def test_mask_hides_all_but_a_prefix():
    assert mask(None) is None
    assert mask("0123456789abcdef") == "0123****"
    assert mask("short") == "****"
