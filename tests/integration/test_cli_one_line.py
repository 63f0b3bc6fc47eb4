"""Every message the CLI prints from the API or an error is one line of a terminal, however
long or many-lined the text behind it (a libvirt error stored as a VM's failed reason), while
the JSON output keeps the text whole. Run as the built dist/pvc against a real API."""

import json
import re

from tests.conftest import fails, ok
from tests.integration.test_cli_vm import UUID1, once_state, pvc, vm1  # noqa: F401 (fixtures)

# 36 KB of libvirt's words over many lines, as a failed start once recorded
LIBVIRT_TEXT = "internal error: qemu unexpectedly closed the monitor:\n\t" + (
    "2024-01-01T00:00:00.000000Z qemu-system-x86_64: -device virtio-blk: Could not open\r\n" * 430
)


def fail_vm(zk, reason: str = LIBVIRT_TEXT) -> None:
    zk.write({("domain.state", UUID1): "fail", ("domain.failed_reason", UUID1): reason})


def test_info_and_list_show_a_long_failed_reason_on_one_line(pvc, vm1, zk):  # noqa: F811
    assert len(LIBVIRT_TEXT) > 36000
    fail_vm(zk)
    info = ok(pvc("vm", "info", "vm1")).splitlines()
    [reason] = [line for line in info if line.startswith("failed reason:")]
    assert "qemu unexpectedly closed the monitor: 2024-01-01" in reason
    assert len(reason) < 1100 and reason.endswith("…")
    assert all(re.match(r"[a-z][a-z ]*: +\S", line) for line in info), info  # one per field
    header, row = ok(pvc("vm", "list")).splitlines()
    assert row.split()[:2] == ["vm1", "fail"]
    assert json.loads(ok(pvc("vm", "info", "vm1", "-f", "json")))["failed_reason"] == LIBVIRT_TEXT


def test_a_failed_wait_is_one_line(pvc, vm1, zk):  # noqa: F811
    thread = once_state(zk, "start", lambda: fail_vm(zk))
    line = fails(pvc("vm", "start", "vm1", "--wait", "--timeout", "60"))
    thread.join()
    assert line.startswith("pvc: vm1 did not start on node1: state fail (internal error: qemu")
    assert len(line) < 1100


def test_api_error_messages_are_one_line(pvc, vm1):  # noqa: F811
    # the API's 400 quotes the name as given, its newline and tab escaped, on one line
    assert fails(pvc("vm", "info", "no\nsuch\tvm")).startswith(
        "pvc: invalid VM name or UUID 'no\\nsuch\\tvm': letters, digits"
    )
