"""`pvc config check` on bad node configurations, run as the built dist/pvc: each is refused
with exit 2 and one line naming what is wrong, never a traceback or a later failure."""

import pytest
import yaml

from tests.conftest import fails, ok

GOOD = {
    "node": {"name": "node1"},
    "cluster": {"coordinators": ["node1"]},
    "api": {"authentication": {"enabled": False}},
    "zookeeper": {"secret": "s3cret"},
}


def write_config(tmp_path, text: bytes) -> str:
    path = tmp_path / "pvc.conf"
    path.write_bytes(text)
    return str(path)


def check(run_pvc, path: str):
    return run_pvc("--config", path, "config", "check")


def test_good_config_passes(run_pvc, tmp_path):
    path = write_config(tmp_path, yaml.safe_dump(GOOD).encode())
    assert ok(check(run_pvc, path)) == f"config OK: {path}\n"


def test_a_config_without_the_secret_exits_2(run_pvc, tmp_path):
    """The node daemon and the API refuse to start without zookeeper.secret: check says so."""
    path = write_config(tmp_path, yaml.safe_dump(GOOD | {"zookeeper": {}}).encode())
    assert fails(check(run_pvc, path), code=2).startswith(
        "pvc: config: 'zookeeper.secret' is not set: pvc node run and pvc api serve refuse"
    )


def test_non_utf8_config_exits_2(run_pvc, tmp_path):
    text = yaml.safe_dump(GOOD).encode()
    path = write_config(tmp_path, text + b"# caf\xe9\n")
    line = fails(check(run_pvc, path), code=2)
    where = f"byte 0xe9 on line {len(text.splitlines()) + 1}"
    assert line == f"pvc: config: cannot read {path}: it is not UTF-8 text ({where})"


@pytest.mark.parametrize(
    "section, values, key",
    [
        ("zookeeper", {"hosts": ""}, "zookeeper.hosts"),
        ("zookeeper", {"hosts": ",,,"}, "zookeeper.hosts"),
        ("zookeeper", {"hosts": "host:notaport"}, "zookeeper.hosts"),
        ("zookeeper", {"hosts": "zk1:2181/bad chroot"}, "zookeeper.hosts"),
        ("zookeeper", {"session_timeout": float("inf")}, "zookeeper.session_timeout"),
        ("zookeeper", {"connect_timeout": float("nan")}, "zookeeper.connect_timeout"),
        ("cluster", {"name": "my cluster"}, "cluster.name"),
        (
            "networks",
            {"cluster": {"device": "eth0", "floating_ip": "10.0.0.1"}},
            "networks.cluster.floating",
        ),
        ("api", {"listen_address": "everywhere"}, "api.listen_address"),
        ("logging", {"file": "/nonexistent-folder/pvc.log"}, "logging.file"),
    ],
)
def test_values_that_would_fail_later_exit_2(run_pvc, tmp_path, section, values, key):
    document = {**GOOD, section: {**GOOD.get(section, {}), **values}}
    path = write_config(tmp_path, yaml.safe_dump(document).encode())
    line = fails(check(run_pvc, path), code=2)
    assert line.startswith(f"pvc: config: '{key}") and len(line) < 200


def test_folder_and_huge_file_exit_2(run_pvc, tmp_path):
    assert "Is a directory" in fails(check(run_pvc, str(tmp_path)), code=2)
    huge = write_config(tmp_path, b"# " + b"x" * (2 * 1024 * 1024) + b"\n")
    assert "larger than 1048576 bytes" in fails(check(run_pvc, huge), code=2)
