"""`pvc provisioner userdata|script|profile` run as the built dist/pvc against a real API and
Zookeeper: files and standard input, tables, JSON, and one readable line on a refusal."""

import json
from pathlib import Path

import pytest

from pvc.ops import cluster, provisioner_store
from tests.conftest import fails, ok
from tests.integration.test_provisioner_records import HELLO, SCRIPT, SMALL, tree

EXAMPLES = Path(__file__).parents[2] / "scripts" / "provisioner"


@pytest.fixture
def pvc(run_pvc, api_server, zk):
    cluster.initialize(zk)
    provisioner_store.add(zk, "system", "small", SMALL)

    def run(*args: str, **kwargs):
        return run_pvc("--config", str(api_server.config_path), "provisioner", *args, **kwargs)

    return run


def test_userdata_from_files_and_standard_input(pvc):
    for name in ("userdata-hello.sh", "userdata-cloud-config.yaml"):
        path = EXAMPLES / name
        word = path.stem.removeprefix("userdata-")
        assert ok(pvc("userdata", "add", word, str(path))) == f"userdata '{word}' added\n"
        assert ok(pvc("userdata", "show", word)) == path.read_text()
    assert ok(pvc("userdata", "add", "piped", "-", input=HELLO)) == "userdata 'piped' added\n"
    lines = ok(pvc("userdata", "list")).splitlines()
    assert lines[0].split() == ["NAME", "FORMAT", "SIZE", "PROFILES"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["cloud-config", "cloud-config"], ["hello", "script"], ["piped", "script"],
    ]  # fmt: skip
    listed = json.loads(ok(pvc("userdata", "list", "pip", "-f", "json")))
    assert [(u["name"], u["text"]) for u in listed] == [("piped", HELLO)]
    ok(pvc("userdata", "modify", "piped", "-", input=HELLO + "echo two\n"))
    assert ok(pvc("userdata", "show", "piped")) == HELLO + "echo two\n"
    info = ok(pvc("userdata", "info", "piped"))
    assert "format:   script" in info and f"size:     {len(HELLO) + 9} bytes" in info
    assert ok(pvc("userdata", "remove", "piped", "--yes")) == "userdata 'piped' removed\n"
    assert fails(pvc("userdata", "remove", "hello", input="n\n")).endswith("(y/N) pvc: not removed")


def test_scripts(pvc, tmp_path):
    path = tmp_path / "noop.py"
    path.write_text(SCRIPT)
    assert ok(pvc("script", "add", "noop", str(path))) == "script 'noop' added\n"
    assert ok(pvc("script", "show", "noop")) == SCRIPT
    assert ok(pvc("script", "list")).splitlines()[1].split() == ["noop", "python", str(len(SCRIPT))]
    assert json.loads(ok(pvc("script", "info", "noop", "-f", "json")))["format"] == "python"
    assert ok(pvc("script", "remove", "noop", "-y")) == "script 'noop' removed\n"
    assert ok(pvc("script", "list")) == "none found\n"


def test_profiles(pvc, tmp_path):
    ok(pvc("userdata", "add", "hello", "-", input=HELLO))
    out = ok(pvc("profile", "add", "web", "--system-template", "small", "--userdata", "hello",
                 "--arg", "image=debian-12", "--arg", "url=http://x/?a=b"))  # fmt: skip
    assert out == "profile 'web' added\n"
    lines = ok(pvc("profile", "list")).splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "SYSTEM", "NETWORK", "STORAGE", "USERDATA",
                                "SCRIPT", "OVA", "ARGUMENTS"]  # fmt: skip
    assert lines[1].split() == ["web", "provisioner", "small", "-", "-", "hello", "-", "-",
                                "image=debian-12", "url=http://x/?a=b"]  # fmt: skip
    info = ok(pvc("profile", "info", "web"))
    assert "userdata:          hello" in info and "system-template:   small" in info
    ok(pvc("profile", "modify", "web", "--userdata", "", "--arg", "image=alpine"))
    profile = json.loads(ok(pvc("profile", "info", "web", "-f", "json")))
    assert (profile["userdata"], profile["arguments"]) == (None, {"image": "alpine"})
    ok(pvc("profile", "modify", "web", "--no-args"))
    assert json.loads(ok(pvc("profile", "info", "web", "-f", "json")))["arguments"] == {}
    assert ok(pvc("profile", "remove", "web", "--yes")) == "profile 'web' removed\n"
    assert ok(pvc("profile", "list")) == "no profiles\n"


@pytest.mark.parametrize(
    "args, code, line",
    [
        (("userdata", "add", "u", "-"), 1, "pvc: userdata 'u' is not cloud-init userdata: it must "
         "begin with a line '#cloud-config' (YAML), '#!' (a script) or a MIME header "
         "'Content-Type: multipart/...'"),
        (("userdata", "add", "u", "/nonexistent"), 2,
         "pvc: cannot read the userdata from /nonexistent: No such file or directory"),
        (("userdata", "show", "nope"), 1, "pvc: userdata 'nope' does not exist"),
        (("userdata", "frob"), 2, "pvc: invalid arguments for 'pvc provisioner userdata'; see "
         "'pvc provisioner userdata --help'"),
        (("script", "add", "s", "-"), 1,
         "pvc: script 's' does not compile: invalid syntax (line 2)"),
        (("script", "remove", "nope", "--yes"), 1, "pvc: script 'nope' does not exist"),
        (("profile", "add", "p"), 1, "pvc: profile 'p' needs a system template (type "
         "provisioner)"),
        (("profile", "add", "p", "--system-template", "big"), 1,
         "pvc: system template 'big' does not exist"),
        (("profile", "add", "p", "--system-template", "small", "--arg", "x"), 1,
         "pvc: invalid script argument 'x': give key=value, the key letters, digits and '_', "
         "not starting with a digit"),
        (("profile", "add", "p", "--type", "vm"), 1,
         "pvc: parameter 'profile_type' must be one of provisioner, ova"),
        (("profile", "modify", "p", "--arg", "a=1", "--no-args"), 2,
         "pvc: give --arg or --no-args, not both"),
        (("profile", "modify", "nope", "--type", "ova"), 1, "pvc: profile 'nope' does not exist"),
    ],
)  # fmt: skip
def test_refusals_are_one_line(pvc, zk, args, code, line):
    before = tree(zk)
    assert fails(pvc(*args, input="hello\ndef f(:\n"), code) == line
    assert tree(zk) == before


def test_removing_used_userdata_names_the_profile(pvc, zk):
    ok(pvc("userdata", "add", "hello", "-", input=HELLO))
    ok(pvc("profile", "add", "web", "--system-template", "small", "--userdata", "hello"))
    assert fails(pvc("userdata", "remove", "hello", "--yes")) == (
        "pvc: userdata 'hello' is used by profile web"
    )
    assert ok(pvc("userdata", "show", "hello")) == HELLO


def test_help_shows_the_usage(pvc):
    for group in ("userdata", "script", "profile"):
        assert "pvc provisioner profile add <name>" in ok(pvc(group, "--help"))
