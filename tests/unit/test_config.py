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

    def leaves(spec, prefix=""):
        for key, field in spec.items():
            if isinstance(field, dict):
                yield from leaves(field, f"{prefix}{key}.")
            else:
                yield key, field

    for key, field in leaves(config.SPEC):
        assert f"{key}:" in text and field.doc in text


@pytest.mark.parametrize("name", ["n" * 64, "0b6b2f34-7c55-4f43-9a0e-2f6a43f1d001"])
def test_node_names_in_the_config_follow_the_name_rule(name):
    with pytest.raises(ConfigError, match="'node.name' is not a valid name: use 1 to 63"):
        config.from_dict({**MINIMAL, "node": {"name": name}})
    with pytest.raises(ConfigError, match="must be a list of node names"):
        config.from_dict({"cluster": {"coordinators": ["a", name]}, "node": {"name": "a"}})
