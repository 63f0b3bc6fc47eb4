"""The built single-file executable: shebang, contents, fast and lazy start."""

import subprocess
import zipfile

import pytest

from tests.conftest import PVC_BIN, fails, ok


def test_is_an_executable_zipapp_for_the_system_python(pvc_bin):
    with open(pvc_bin, "rb") as handle:
        assert handle.readline() == b"#!/usr/bin/python3\n"
    names = zipfile.ZipFile(PVC_BIN).namelist()
    assert "__main__.py" in names and "pvc/zk/handler.py" in names
    for bundled in ("kazoo/", "bottle.py", "waitress/", "docopt.py", "pyroute2/", "yaml/"):
        assert any(name.startswith(bundled) for name in names), bundled
    assert not [name for name in names if name.endswith(".so")]


def test_help_lists_groups_without_importing_heavy_modules(pvc_bin):
    result = subprocess.run(
        ["/usr/bin/python3", "-X", "importtime", pvc_bin, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for group in (
        "node",
        "api",
        "vm",
        "network",
        "storage",
        "provisioner",
        "cluster",
        "connection",
    ):
        assert f"\n  {group} " in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    for heavy in ("kazoo", "bottle", "libvirt", "waitress", "yaml"):
        assert heavy not in imported


def test_version(run_pvc):
    assert ok(run_pvc("--version")).startswith("pvc ")


@pytest.mark.parametrize(
    "args, code",
    [(["frobnicate"], 2), (["provisioner", "list"], 2), (["--connection"], 2)],
)
def test_bad_or_unavailable_groups_are_one_line(run_pvc, args, code):
    assert fails(run_pvc(*args), code).startswith("pvc")
