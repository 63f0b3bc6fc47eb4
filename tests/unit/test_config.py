"""Configuration validation: defaults, unknown keys and wrong types as one line with the key."""

import pytest
import yaml

from pvc import config
from pvc.errors import ConfigError

MINIMAL = {"cluster": {"coordinators": ["a", "b", "c"]}, "node": {"name": "a"}}


def test_defaults_and_derived_values():
    loaded = config.from_dict({**MINIMAL, "api": {"authentication": {"keys": [{"key": "k"}]}}})
    assert loaded.get("api.listen_port") == 7370
    assert loaded.get("timers.keepalive_interval") == 5.0
    assert loaded.zookeeper_hosts == "a:2181,b:2181,c:2181"
    assert loaded.node_name == "a"


def test_node_name_defaults_to_short_hostname(monkeypatch):
    monkeypatch.setattr(config.socket, "gethostname", lambda: "hv7.example.org")
    document = {"cluster": {"coordinators": ["x"]}, "api": {"authentication": {"enabled": False}}}
    assert config.from_dict(document).node_name == "hv7"


@pytest.mark.parametrize(
    "document, message",
    [
        ({}, "'cluster.coordinators' must be set"),
        ({**MINIMAL, "colour": 1}, "unknown key 'colour'"),
        ({**MINIMAL, "api": {"tls": {"enabld": True}}}, "unknown key 'api.tls.enabld'"),
        ({**MINIMAL, "api": {"listen_port": "7370"}}, "'api.listen_port' must be an integer"),
        ({**MINIMAL, "api": {"listen_port": 70000}}, "'api.listen_port' must be a port"),
        ({**MINIMAL, "timers": {"keepalive_interval": 0}}, "must be greater than 0"),
        ({**MINIMAL, "timers": {"fence_intervals": True}}, "'timers.fence_intervals' must be"),
        ({**MINIMAL, "api": "yes"}, "'api' must be a mapping"),
        ({"cluster": {"coordinators": "a,b"}}, "'cluster.coordinators' must be a list"),
        ({**MINIMAL}, "'api.authentication.keys' is empty"),
        ({**MINIMAL, "api": {"tls": {"enabled": True}}}, "'api.tls' is enabled but"),
        ({**MINIMAL, "logging": {"level": "loud"}}, "'logging.level' must be debug"),
        ({**MINIMAL, "node": {"name": "../etc"}}, "'node.name' is not a valid name"),
        ({"cluster": {"coordinators": ["a", ""]}}, "must be a list of node names"),
        ({"cluster": {"coordinators": []}}, "must name at least one node"),
        ({"cluster": {"coordinators": ["a", "a"]}}, "must not name a node twice"),
        ({**MINIMAL, "cluster": {"coordinators": ["a"], "name": "a\x07b"}}, "'cluster.name' is"),
        ({**MINIMAL, "cluster": {"coordinators": ["a"], "name": "c" * 64}}, "'cluster.name' is"),
        ({**MINIMAL, "node": {"name": "n" * 64}}, "'node.name' is not a valid name"),
        ({**MINIMAL, 1: "x", "b": 2}, "unknown key '1'"),
        ({**MINIMAL, "provisioner": {"work_directory": "tmp"}}, "'provisioner.work_directory' "),
        ({**MINIMAL, "provisioner": {"script_timeout": 0}}, "'provisioner.script_timeout' "),
        ({**MINIMAL, "provisioner": {"script_timeout": "1h"}}, "'provisioner.script_timeout' "),
    ],
)
def test_bad_documents_name_the_key(document, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.from_dict(document)


def test_load_reports_yaml_errors_with_the_line(tmp_path):
    path = tmp_path / "pvc.conf"
    path.write_text("cluster:\n  coordinators: [a\n")
    with pytest.raises(ConfigError, match=r"pvc.conf at line \d+"):
        config.load(str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(str(tmp_path / "missing.conf"))


def test_config_path_precedence(monkeypatch):
    monkeypatch.setenv("PVC_CONFIG", "/env.conf")
    assert config.config_path("/flag.conf") == "/flag.conf"
    assert config.config_path() == "/env.conf"
    monkeypatch.delenv("PVC_CONFIG")
    assert config.config_path() == "/etc/pvc/pvc.conf"


def test_sample_is_valid_and_documents_every_key():
    text = config.sample()
    loaded = config.from_dict(yaml.safe_load(text))
    assert len(loaded.get("api.authentication.keys")[0]["key"]) >= 32
    assert config.sample() != text  # a fresh key each time

    for key, field in leaves(config.SPEC):
        assert f"{key.rpartition('.')[2]}:" in text and field.doc in text


AUTH_OFF = {"api": {"authentication": {"enabled": False}}}


def with_values(**sections) -> dict:
    """MINIMAL with authentication off and `sections` merged in."""
    document = {**MINIMAL, **AUTH_OFF}
    for name, values in sections.items():
        document[name] = {**document.get(name, {}), **values}
    return document


@pytest.mark.parametrize(
    "hosts",
    ["", ",,,", "host:notaport", "h:0", "h:65536", "h:-1", "h:2181/", "h:2181/a//b", "h:2181/a b",
     "h:2181/..", "h:2181,", "[::1", "[::1]x", "bad host:2181", "h:２１８１", "::1:2181", "::1",
     "h:2181/zookeeper", "h/zookeeper/pvc"],
)  # fmt: skip
def test_zookeeper_hosts_must_parse(hosts):
    with pytest.raises(ConfigError, match="'zookeeper.hosts' must be host"):
        config.from_dict(with_values(zookeeper={"hosts": hosts}))


@pytest.mark.parametrize(
    "hosts", ["zk1", "zk1:2181,zk2:2182", "10.0.0.1:2181/pvc", "[fd00::1]:2181,zk.example.org/a/b"]
)
def test_zookeeper_hosts_accepted(hosts):
    assert config.from_dict(with_values(zookeeper={"hosts": hosts})).zookeeper_hosts == hosts


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize(
    "key",
    ["zookeeper.connect_timeout", "zookeeper.session_timeout", "timers.keepalive_interval",
     "timers.relinquish_timeout", "timers.vm_shutdown_timeout", "vm.memory_overcommit_ratio"],
)  # fmt: skip
def test_every_number_is_finite(key, value):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=f"'{key}' must be a finite number"):
        config.from_dict(with_values(**{section: {name: value}}))


def leaves(spec, prefix=""):
    for key, field in spec.items():
        if isinstance(field, dict):
            yield from leaves(field, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", field


NUMBER_KEYS = [key for key, field in leaves(config.SPEC) if field.kind in (int, (int, float))]


@pytest.mark.parametrize("key", NUMBER_KEYS)
def test_every_number_has_a_range(key):
    section, name = key.split(".")
    for value in (-0.0 if "float" in repr(config.SPEC[section][name].kind) else -1, 10**400):
        with pytest.raises(ConfigError, match=f"'{key}' must be"):
            config.from_dict(with_values(**{section: {name: value}}))


@pytest.mark.parametrize(
    "section, values, message",
    [
        ("networks", {"cluster": {"device": "eth0", "floating_ip": "10.0.0.1"}}, "prefix length"),
        ("networks", {"storage": {"device": "e", "floating_ip": "10.0.0.300/24"}}, "prefix"),
        ("networks", {"upstream": {"floating_ip": "10.0.0.1/24"}}, "no 'device'"),
        ("networks", {"cluster": {"address": "10.0.0.1/24"}}, "no 'device'"),
        ("networks", {"cluster": {"device": "a/b"}}, "interface"),
        ("networks", {"cluster": {"device": "x" * 16}}, "interface"),
        ("networks", {"cluster": {"device": "eth0", "mtu": 100}}, "from 576"),
        ("networks", {"upstream": {"device": "eth0", "gateway": "router"}}, "IP address"),
        ("networks", {"run_directory": "run"}, "absolute path"),
        ("cluster", {"floating_ip": "10.0.0.1/24"}, "is now 'networks.cluster.floating_ip'"),
        ("cluster", {"floating_interface": "eth0"}, "is now 'networks.cluster.device'"),
        ("api", {"listen_address": "localhost"}, "'api.listen_address' must be an IP address"),
        ("api", {"listen_address": ""}, "'api.listen_address' must be an IP address"),
        ("api", {"authentication": {"keys": [{"key": "a b"}]}}, "visible ASCII"),
        ("api", {"authentication": {"keys": [{"key": "é"}]}}, "visible ASCII"),
        ("api", {"authentication": {"keys": [{"key": "k" * 1025}]}}, "at most 1024"),
        ("api", {"tls": {"enabled": True, "cert_file": "c.pem", "key_file": "/k"}}, "absolute"),
        ("libvirt", {"uri": ""}, "'libvirt.uri' must be a libvirt URI"),
        ("libvirt", {"migration_uri": "node1"}, "'libvirt.migration_uri' must be a libvirt URI"),
        ("logging", {"file": "pvc.log"}, "'logging.file' must be an absolute path"),
        ("ipmi", {"host": "bmc one"}, "'ipmi.host' must be a host name"),
        ("ipmi", {"host": "bmc1"}, "'ipmi.user' or 'ipmi.password' is not"),
    ],
)
def test_addresses_names_and_paths(section, values, message):
    with pytest.raises(ConfigError, match=message):
        config.from_dict(with_values(**{section: values}))


def test_well_formed_values_pass():
    loaded = config.from_dict(
        with_values(
            networks={"cluster": {"device": "br-pvc.100", "floating_ip": "10.0.0.254/24"}},
            api={"listen_address": "::"},
            libvirt={"uri": "qemu:///system?socket=/run/x.sock", "migration_uri": "test:///d"},
            ipmi={"host": "10.1.0.7", "user": "admin", "password": "pw"},
            logging={"file": "/var/log/pvc.log"},
        )
    )
    assert loaded.get("networks.cluster.floating_ip") == "10.0.0.254/24"


def test_hostname_as_node_name_follows_the_name_rule(monkeypatch):
    monkeypatch.setattr(config.socket, "gethostname", lambda: "bad host.example.org")
    document = {"cluster": {"coordinators": ["x"]}, **AUTH_OFF}
    with pytest.raises(ConfigError, match="'node.name' is not set and the host name is not"):
        config.from_dict(document)


def write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_load_refuses_non_utf8_with_the_line(tmp_path):
    path = write(tmp_path / "pvc.conf", b"cluster:\n  name: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xff on line 2\)"):
        config.load(path)


def test_load_refuses_a_huge_file_without_reading_it_whole(tmp_path):
    path = write(tmp_path / "pvc.conf", b"#" * (config.limits.CONFIG_FILE_MAX + 1))
    with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
        config.load(path)
    with pytest.raises(ConfigError, match="larger than"):
        config.load("/dev/zero")


def test_load_refuses_a_folder_and_deep_nesting(tmp_path):
    with pytest.raises(ConfigError, match="cannot read .*: Is a directory"):
        config.load(str(tmp_path))
    with pytest.raises(ConfigError, match="nested too deeply"):
        config.load(write(tmp_path / "deep.conf", b"[" * 100000))


def test_check_files_finds_missing_tls_files_and_log_folder(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    tls = {"enabled": True, "cert_file": str(cert), "key_file": str(tmp_path / "key.pem")}
    loaded = config.from_dict(with_values(api={"tls": tls}))
    with pytest.raises(ConfigError, match="'api.tls.key_file': .*key.pem does not exist"):
        config.check_files(loaded)
    loaded = config.from_dict(with_values(api={"tls": tls | {"key_file": str(tmp_path)}}))
    with pytest.raises(ConfigError, match="'api.tls.key_file': .* is not a file"):
        config.check_files(loaded)
    loaded = config.from_dict(with_values(logging={"file": str(tmp_path / "no" / "pvc.log")}))
    with pytest.raises(ConfigError, match="'logging.file': .*/no does not exist"):
        config.check_files(loaded)
    config.check_files(config.from_dict(with_values(logging={"file": str(tmp_path / "p.log")})))


@pytest.mark.parametrize("name", ["n" * 64, "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d001"])
def test_node_names_in_the_config_follow_the_name_rule(name):
    with pytest.raises(ConfigError, match="'node.name' is not a valid name: use 1 to 63"):
        config.from_dict({**MINIMAL, "node": {"name": name}})
    with pytest.raises(ConfigError, match="must be a list of node names"):
        config.from_dict({"cluster": {"coordinators": ["a", name]}, "node": {"name": "a"}})


def test_only_a_node_that_serves_the_api_needs_api_keys():
    """A hypervisor, or a coordinator that does not run the API, needs no API key."""
    hypervisor = {"cluster": {"coordinators": ["a"]}, "node": {"name": "hv1"}}
    assert config.from_dict(hypervisor).node_name == "hv1"
    quiet = {**MINIMAL, "api": {"serve_on_primary": False}}
    assert not config.from_dict(quiet).get("api.authentication.keys")
    with pytest.raises(ConfigError, match="'api.authentication.keys' is empty"):
        config.require_api_keys(config.from_dict(hypervisor).get("api.authentication"))
