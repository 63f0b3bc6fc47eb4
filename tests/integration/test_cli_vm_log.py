"""`pvc vm log` (and --follow), run as the built dist/pvc against a real API and Zookeeper."""

# the fixtures imported from test_cli_vm (pvc and vm1) are the tests' parameters
# ruff: noqa: F811

import signal
import subprocess

import pytest

from pvc.cli import vm as vm_cli
from tests import processes
from tests.conftest import fails, ok
from tests.integration.test_api import call
from tests.integration.test_cli_vm import UUID1, pvc, vm1  # noqa: F401 (fixtures)


def test_log(pvc, vm1, zk, api_server):
    assert ok(pvc("vm", "log", "vm1")) == ""
    reply = call(api_server, "GET", f"/vm/{UUID1}/console")[1]
    assert reply == {"name": "vm1", "uuid": UUID1, "lines": []}
    zk.write({("domain.console_log", UUID1): "boot\nlogin: \nroot\n"})
    assert ok(pvc("vm", "log", "vm1", "-l", "2")) == "login: \nroot\n"
    assert fails(pvc("vm", "log", "vm1", "--lines", "0")) == (
        "pvc: parameter 'lines' must be at least 1 and at most 10000"
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_log_follow_prints_new_lines_until_interrupted(pvc, vm1, zk, api_server, pvc_bin, tmp_path):
    zk.write({("domain.console_log", UUID1): "one\ntwo\n"})
    env = {"PVC_CLIENT_DIR": str(tmp_path / "client")}
    args = [pvc_bin, "--config", str(api_server.config_path), "vm", "log", "vm1", "--follow"]
    # Ctrl-C in a terminal: SIGINT handled as Python does by default, even when the tests run
    # in the background, where the shell makes every child ignore SIGINT
    with processes.running(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, preexec_fn=_default_sigint) as process:  # fmt: skip
        assert [process.stdout.readline() for _ in range(2)] == ["one\n", "two\n"]
        zk.write({("domain.console_log", UUID1): "one\ntwo\nthree\nfour\n"})
        assert [process.stdout.readline() for _ in range(2)] == ["three\n", "four\n"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 130
        assert "Traceback" not in process.stderr.read()


@pytest.mark.parametrize(
    "before, now, new",
    [
        ([], ["a"], ["a"]),
        (["a", "b"], ["a", "b"], []),
        (["a", "b"], ["b", "c", "d"], ["c", "d"]),
        (["a", "b"], ["x", "y"], ["x", "y"]),
        (["x", "x"], ["x", "x", "x"], ["x"]),
    ],
)
def test_new_lines(before, now, new):
    assert vm_cli.new_lines(before, now) == new
