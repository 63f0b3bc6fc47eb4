"""The connection store: file modes, add/replace/remove, entries pvc cannot use, "local"
from the node config, and the forms of an API address."""

import json
import os
import re
import stat

import pytest
import yaml

from pvc.cli import api_address, connections
from pvc.cli.connection import mask
from pvc.cli.connections import Connection
from pvc.errors import ConfigError, NotFound, UsageError


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


def test_a_store_others_may_read_is_warned_about(client_dir, capsys):
    connections.add(Connection("prod", "10.0.0.1", api_key="secret"))
    connections.load_store()
    assert capsys.readouterr().err == ""
    (client_dir / "pvc.json").chmod(0o644)
    assert "prod" in connections.load_store().connections  # still read
    warning = capsys.readouterr().err
    assert warning.startswith("pvc: warning: ") and "holds API keys and is mode 0644" in warning
    assert warning.count("\n") == 1


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
    assert connections.load_store().connections == {"prod": conn}
    stored = json.loads((client_dir / "pvc.json").read_text())
    assert stored["connections"]["prod"]["api_key"] == "k" * 16


def test_add_existing_name_replaces_it(client_dir):
    connections.add(Connection("prod", "10.0.0.1"))
    connections.add(Connection("test", "10.0.0.9"))
    assert connections.add(Connection("prod", "10.0.0.2", 7000)) is True
    stored = connections.load_store().connections
    assert stored["prod"] == Connection("prod", "10.0.0.2", 7000)
    assert sorted(stored) == ["prod", "test"]


def test_remove_forgets_only_that_connection(client_dir):
    connections.add(Connection("prod", "10.0.0.1"))
    connections.add(Connection("test", "10.0.0.9"))
    connections.remove("prod")
    assert list(connections.load_store().connections) == ["test"]


def test_remove_unknown_is_not_found(client_dir):
    with pytest.raises(NotFound, match="no connection named 'ghost'"):
        connections.remove("ghost")


def test_missing_store_is_empty(client_dir):
    assert connections.load_store().connections == {}
    assert not client_dir.exists()


@pytest.mark.parametrize(
    "content", [b"{not json", b'{"connections": []}', b"[]", b"\xff\xfe", b"[" * 100000]
)
def test_malformed_store_is_one_config_error(client_dir, content):
    client_dir.mkdir()
    (client_dir / "pvc.json").write_bytes(content)
    with pytest.raises(ConfigError, match="cannot read .*pvc.json .*; fix or remove it"):
        connections.load_store()


def write_store(client_dir, entries: dict) -> None:
    client_dir.mkdir(mode=0o700)
    (client_dir / "pvc.json").write_text(json.dumps({"connections": entries}))


GOOD_ENTRY = {"address": "10.0.0.1", "port": 7370, "ssl": False, "api_key": None}
BROKEN_ENTRIES = {
    "url": ({"address": "http://127.0.0.1"}, "its address 'http://127.0.0.1' is not a host"),
    "empty": ({"address": ""}, "its address '' is not a host"),
    "port": ({"address": "h", "port": 0}, "its port 0 is not a port number"),
    "boolport": ({"address": "h", "port": True}, "its port True is not a port number"),
    "ssl": ({"address": "h", "ssl": "yes"}, "its ssl is not true or false"),
    "key": ({"address": "h", "api_key": "a\nb"}, "its API key must be visible ASCII"),
    "extra": ({"address": "h", "colour": 1}, "it is not {address, port"),
    "text": ("h:7370", "it is not {address, port"),
    "bad name": ({"address": "h"}, "its name is not valid"),
}


def test_broken_entries_are_named_and_kept_apart(client_dir):
    write_store(client_dir, {"good": GOOD_ENTRY} | {n: e for n, (e, _) in BROKEN_ENTRIES.items()})
    store = connections.load_store()
    assert list(store.connections) == ["good"]
    assert sorted(store.broken) == sorted(BROKEN_ENTRIES)
    for name, (_, why) in BROKEN_ENTRIES.items():
        assert store.broken[name][1].startswith(why)
        message = store.broken_error(name).message
        assert f"connection '{name}'" in message and "pvc connection remove" in message


def test_broken_entry_fails_only_where_used(client_dir):
    write_store(client_dir, {"good": GOOD_ENTRY, "url": {"address": "http://127.0.0.1"}})
    assert connections.resolve("good", None).address == "10.0.0.1"
    with pytest.raises(ConfigError, match="connection 'url' in .* cannot be used: its address"):
        connections.resolve("url", None)
    assert list(connections.known(None).connections) == ["good"]


def test_add_and_remove_keep_broken_entries_as_they_were(client_dir):
    write_store(client_dir, {"url": {"address": "http://127.0.0.1"}, "text": "h"})
    connections.add(Connection("new", "10.0.0.2"))
    stored = json.loads((client_dir / "pvc.json").read_text())["connections"]
    assert stored["url"] == {"address": "http://127.0.0.1"} and stored["text"] == "h"
    assert connections.add(Connection("url", "10.0.0.3")) is True  # replaces the broken one
    connections.remove("text")
    store = connections.load_store()
    assert sorted(store.connections) == ["new", "url"] and not store.broken


@pytest.mark.parametrize(
    "fields",
    [{"address": ""}, {"address": "http://h"}, {"address": "h", "port": 70000},
     {"address": "h", "api_key": "two words"}, {"address": "h", "api_key": "ké"}],
)  # fmt: skip
def test_a_connection_is_valid_by_construction(fields):
    with pytest.raises(ValueError):
        Connection("x", **fields)


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
    assert list(connections.known(str(tmp_path / "missing.conf")).connections) == ["prod"]
    config = node_config(tmp_path / "pvc.conf", authentication={"enabled": False})
    assert list(connections.known(config).connections) == ["local", "prod"]


def test_mask_hides_all_but_a_prefix():
    assert mask(None) is None
    assert mask("0123456789abcdef") == "0123****"
    assert mask("short") == "****"


@pytest.mark.parametrize(
    "text, port, ssl, expected",
    [
        ("10.0.0.1", None, False, ("10.0.0.1", 7370, False)),
        ("api.example.org", 80, True, ("api.example.org", 80, True)),
        ("h:8000", None, False, ("h", 8000, False)),
        ("h:8000", 8000, False, ("h", 8000, False)),
        ("[fd00::1]:443", None, True, ("fd00::1", 443, True)),
        ("fd00::1", None, False, ("fd00::1", 7370, False)),
        ("http://127.0.0.1", None, False, ("127.0.0.1", 7370, False)),
        ("https://h", None, False, ("h", 7370, True)),
        ("https://h", None, True, ("h", 7370, True)),
        ("HTTPS://h:8443/api/v1/", None, False, ("h", 8443, True)),
        ("http://[::1]:7000/", 7000, False, ("::1", 7000, False)),
    ],
)
def test_address_forms(text, port, ssl, expected):
    assert tuple(api_address.parse(text, port, ssl, 7370)) == expected


@pytest.mark.parametrize(
    "text, port, ssl, why",
    [
        ("", None, False, "give a host name"),
        ("a b", None, False, "not a host name"),
        ("h:0", None, False, "not a host name"),
        ("h:http", None, False, "not a host name"),
        ("[::1", None, False, "not a host name"),
        ("http://[x", None, False, "not a URL"),
        ("ftp://h", None, False, "scheme must be http or https"),
        ("http://", None, False, "not a host name"),
        ("http://h:99999", None, False, "port must be a number"),
        ("http://h:0", None, False, "not a host name"),
        ("http://h/api", None, False, "the API's path is /api/v1"),
        ("http://h?x=1", None, False, "no user, query or fragment"),
        ("http://user@h", None, False, "no user, query or fragment"),
        ("http://h", None, True, "--ssl contradicts"),
        ("h:8000", 9000, False, "--port 9000 contradicts"),
    ],
)
def test_bad_addresses_are_usage_errors(text, port, ssl, why):
    with pytest.raises(UsageError, match=re.escape(why)):
        api_address.parse(text, port, ssl, 7370)
