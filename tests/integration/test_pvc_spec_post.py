"""pvc.spec's %post run for real (with dist/pvc, in a scratch /etc/pvc): each install gets a
configuration of its own, mode 0600, that `pvc config check` accepts; an existing one is kept."""

import subprocess

import yaml

from tests.conftest import PVC_BIN
from tests.unit.test_pvc_spec import sections


def install(etc) -> None:
    """Runs %post with /etc/pvc and /usr/bin/pvc pointing at the test's own."""
    script = sections()["post"].replace("/etc/pvc", str(etc)).replace("/usr/bin/pvc", str(PVC_BIN))
    subprocess.run(["/bin/sh", "-ec", script], check=True, timeout=60)


def test_each_install_gets_its_own_private_configuration(tmp_path, pvc_bin):
    secrets = []
    for machine in ("one", "two"):
        etc = tmp_path / machine
        etc.mkdir()
        install(etc)
        conf = etc / "pvc.conf"
        assert conf.stat().st_mode & 0o777 == 0o600
        document = yaml.safe_load(conf.read_text())
        secrets.append((document["zookeeper"]["secret"], document["api"]["authentication"]["keys"]))
        checked = subprocess.run(
            [pvc_bin, "config", "check", "--config", str(conf)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr
    assert secrets[0][0] and secrets[0][0] != secrets[1][0]
    assert secrets[0][1] != secrets[1][1]


def test_an_existing_configuration_is_kept(tmp_path):
    conf = tmp_path / "pvc.conf"
    conf.write_text("node: {name: kept}\n")
    install(tmp_path)
    assert conf.read_text() == "node: {name: kept}\n"
