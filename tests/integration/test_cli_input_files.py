"""What `pvc vm define` and `pvc vm modify` read (a file or standard input) is UTF-8 text of
at most limits.XML_MAX bytes, or refused by the CLI itself: exit 2, one line naming the file,
nothing sent to the API. Confirmation answers that are not UTF-8 are a no. Run as the built
dist/pvc against a real API."""

import json
import subprocess

import pytest

from pvc import limits
from tests.conftest import fails, ok
from tests.integration.test_cli_vm import UUID1, pvc, record, vm1  # noqa: F401 (fixtures)
from tests.integration.test_vm_ops import domain_xml


def run_with_bytes(pvc_bin, run_pvc, config, *args: str, stdin: bytes):
    """dist/pvc with raw bytes on standard input (run_pvc takes text only)."""
    env = {"PATH": "/usr/bin:/bin", "PVC_CLIENT_DIR": str(run_pvc.client_dir)}
    return subprocess.run(
        [pvc_bin, "--config", config, *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )


def one_line_exit_2(result) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in stderr, stderr
    [line] = stderr.splitlines()
    return line


def vm_count(run) -> int:
    return len(json.loads(ok(run("vm", "list", "-f", "json"))))


@pytest.mark.parametrize(
    "stdin, why",
    [
        (b"\xff\xfe", "it is not UTF-8 text (byte 0xff on line 1)"),
        (b"<domain>\n<name>caf\xe9</name>", "it is not UTF-8 text (byte 0xe9 on line 2)"),
        (b"a" * (limits.XML_MAX + 1), f"it is larger than {limits.XML_MAX} bytes"),
    ],
)
def test_define_refuses_bad_standard_input(pvc, pvc_bin, run_pvc, api_server, stdin, why):  # noqa: F811
    config = str(api_server.config_path)
    result = run_with_bytes(pvc_bin, run_pvc, config, "vm", "define", "-", stdin=stdin)
    assert one_line_exit_2(result) == f"pvc: cannot read the domain XML from standard input: {why}"
    assert vm_count(pvc) == 0


def test_define_and_modify_refuse_bad_files(pvc, vm1, tmp_path):  # noqa: F811
    latin1 = tmp_path / "latin1.xml"
    latin1.write_bytes(domain_xml("vm2", UUID1).encode().replace(b"vm2", b"v\xe9"))
    huge = tmp_path / "huge.xml"
    huge.write_bytes(b" " * (limits.XML_MAX + 1))
    cases = {
        str(latin1): "it is not UTF-8 text",
        str(huge): "it is larger than",
        str(tmp_path): "Is a directory",
        str(tmp_path / "missing.xml"): "No such file or directory",
        "/dev/zero": "it is larger than",
    }
    before = record(pvc)
    for path, why in cases.items():
        for args in (("vm", "define", path), ("vm", "modify", "vm1", path)):
            line = fails(pvc(*args), code=2)
            assert line.startswith(f"pvc: cannot read the domain XML from {path}: {why}")
    assert record(pvc) == before and vm_count(pvc) == 1


def test_a_bad_file_is_refused_before_any_connection(run_pvc, tmp_path):
    line = fails(run_pvc("-c", "nowhere", "vm", "define", str(tmp_path)), code=2)
    assert line == f"pvc: cannot read the domain XML from {tmp_path}: Is a directory"


def test_largest_xml_allowed_is_read_whole(pvc, tmp_path):  # noqa: F811
    text = domain_xml("vm1", UUID1)
    padded = text.replace(
        "</domain>", "<!--" + "x" * (limits.XML_MAX - len(text) - 20) + "-->\n</domain>"
    )
    path = tmp_path / "big.xml"
    path.write_text(padded)
    assert len(padded.encode()) <= limits.XML_MAX
    ok(pvc("vm", "define", str(path)))
    assert record(pvc)["uuid"] == UUID1


def test_non_utf8_confirmation_is_a_no(pvc, pvc_bin, run_pvc, api_server, vm1):  # noqa: F811
    config = str(api_server.config_path)
    result = run_with_bytes(pvc_bin, run_pvc, config, "vm", "remove", "vm1", stdin=b"\xff\n")
    stderr = result.stderr.decode()
    assert result.returncode == 1 and stderr.endswith("pvc: aborted\n"), stderr
    assert record(pvc)["name"] == "vm1"
