"""Every test is bounded in time: the suite's pytest-timeout limit, and the helpers that end
the processes tests start (tests/processes.py)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests import processes
from tests.conftest import REPO

HANGING_TEST = """
import subprocess

import pytest


@pytest.mark.timeout(2)
def test_hangs_in_the_exit_of_with_popen(tmp_path):
    with subprocess.Popen(["sleep", "600"]) as process:
        (tmp_path.parent / "pid").write_text(str(process.pid))
        process.wait(timeout=0.1)  # times out; the exit of `with` then waits forever
"""


def test_a_hanging_test_fails_at_its_limit_and_the_next_one_runs(tmp_path):
    (tmp_path / "test_hang.py").write_text(HANGING_TEST + "\n\ndef test_next():\n    pass\n")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path),
         "--basetemp", str(tmp_path / "base"), str(tmp_path / "test_hang.py")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    os.kill(int((tmp_path / "base" / "pid").read_text()), signal.SIGKILL)
    assert time.monotonic() - started < 30
    assert "Timeout (>2.0s)" in result.stdout, result.stdout
    assert "1 failed, 1 passed" in result.stdout, result.stdout


def test_the_suite_has_a_time_limit(pytestconfig):
    assert float(pytestconfig.getini("timeout")) > 0


def test_end_kills_a_process_that_ignores_sigterm():
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    script += "print('ready', flush=True); time.sleep(600)"
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    started = time.monotonic()
    assert processes.end(process, grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5
    process.stdout.close()


def test_end_returns_the_exit_code_of_a_process_that_stops():
    process = subprocess.Popen(["sleep", "600"])
    assert processes.end(process) == -signal.SIGTERM
    assert processes.end(process) == -signal.SIGTERM  # already ended: no signal, same code


def test_running_ends_the_process_when_the_block_fails():
    with (
        pytest.raises(subprocess.TimeoutExpired),
        processes.running(["sleep", "600"], grace=1) as process,
    ):
        process.wait(timeout=0.1)
    assert process.returncode == -signal.SIGTERM


def test_running_closes_the_pipes():
    with processes.running(["echo", "one"], stdout=subprocess.PIPE) as process:
        assert process.stdout.readline() == b"one\n"
        assert process.wait(5) == 0
    assert process.stdout.closed


HANGING_TEARDOWN = """
import subprocess
import time

import pytest


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.wait()  # no timeout: hangs until the backstop kills the sleep


@pytest.mark.timeout(1)
def test_hangs_then_its_teardown_hangs_too(sleeper):
    time.sleep(600)
"""


def test_a_teardown_hanging_after_the_limit_is_ended_by_the_backstop(tmp_path):
    (tmp_path / "test_hang.py").write_text(HANGING_TEARDOWN + "\n\ndef test_next():\n    pass\n")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "tests.timeout_backstop", "-c", str(REPO / "pyproject.toml"),
         "--rootdir", str(tmp_path), str(tmp_path / "test_hang.py")],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert time.monotonic() - started < 30
    assert "Timeout (>1.0s)" in result.stdout, result.stdout
    assert "1 failed, 1 passed" in result.stdout, result.stdout
