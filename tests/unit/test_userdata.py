"""Userdata and install script checks and placeholders (pvc.ops.userdata,
pvc.ops.provisioner_records): what is accepted, and each refusal's reason."""

from pathlib import Path

import pytest

from pvc.cli import provisioner_records as cli
from pvc.errors import InvalidInput
from pvc.ops import provisioner_records, userdata
from pvc.ops.provisioner_records import check_script, check_text, parse_arguments
from pvc.ops.userdata import render_userdata

EXAMPLES = Path(__file__).parents[2] / "scripts" / "provisioner"
VARIABLES = {"vm_name": "web1", "vm_uuid": "u-1", "hostname": "web1.lan", "profile": "demo"}
MULTIPART = (
    'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="XX"\n\n'
    "--XX\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho {{ vm_name }}\n--XX--\n"
)


def refusal(text: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        userdata.check("userdata 'u'", text)
    return caught.value.message


def test_placeholders_are_replaced_with_or_without_spaces():
    text = "#!/bin/sh\necho {{vm_name}} {{ vm_uuid }} {{  hostname\t}} {{ profile }}\n"
    assert render_userdata(text, VARIABLES) == "#!/bin/sh\necho web1 u-1 web1.lan demo\n"


def test_only_the_given_variables_are_replaced():
    assert render_userdata("{{ vm_name }} {{ hostname }}", {"vm_name": "a"}) == "a {{ hostname }}"


def test_a_replaced_value_is_not_expanded_again():
    assert render_userdata("{{ vm_name }}", {"vm_name": "{{ profile }}"}) == "{{ profile }}"


def test_the_records_module_offers_render_userdata():
    assert provisioner_records.render_userdata is render_userdata


@pytest.mark.parametrize(
    "text, found",
    [
        ("#cloud-config\nhostname: {{ hostname }}\n", "cloud-config"),
        ("#cloud-config\r\npackages: [vim]\r\n", "cloud-config"),
        ("#!/bin/sh\necho {{ vm_name }}\n", "script"),
        (MULTIPART, "multipart"),
        (MULTIPART.split("\n", 1)[1], "multipart"),
    ],
)
def test_cloud_init_documents_are_accepted(text, found):
    userdata.check("userdata 'u'", text)
    assert userdata.text_format(text) == found


def test_the_example_files_are_accepted():
    for name in ("userdata-hello.sh", "userdata-cloud-config.yaml"):
        text = (EXAMPLES / name).read_text()
        userdata.check(f"userdata '{name}'", text)
    hello = render_userdata((EXAMPLES / "userdata-hello.sh").read_text(), VARIABLES)
    assert 'echo "hello from web1"' in hello


@pytest.mark.parametrize(
    "text, reason",
    [
        ("hello\n", "is not cloud-init userdata: it must begin with a line '#cloud-config'"),
        ("#cloud-configx\na: 1\n", "is not cloud-init userdata"),
        ("#cloud-config\na: 1\nb: [1, 2\n", "is not valid YAML on line 4: expected ',' or ']'"),
        ("#cloud-config\na: 1\n  b: 2\n", "is not valid YAML on line 3"),
        ("#cloud-config\n- a\n- b\n", "#cloud-config must be a YAML mapping (key: value), not a "
         "list"),
        ("#cloud-config\n", "#cloud-config must be a YAML mapping (key: value), not nothing"),
        ("#cloud-config\nhostname: {{ name }}\n", "has an unknown placeholder {{ name }} on line "
         "2: the known ones are vm_name, vm_uuid, hostname, profile"),
        ("#!/bin/sh\necho {{ v1.instance_id }}\n", "unknown placeholder {{ v1.instance_id }}"),
        ("Content-Type: multipart/mixed\n\nx\n", "is not a valid MIME multipart document: A "
         "message claimed to be a multipart but had no boundary parameter."),
        ('Content-Type: multipart/mixed; boundary="X"\n\nno parts\n', "The claimed start "
         "boundary was never found."),
        ("Content-Type: text/plain\n\nhello\n", "a MIME document must be of Content-Type "
         "multipart/..., not text/plain"),
        (MULTIPART.replace("text/x-shellscript\n\n#!/bin/sh\necho {{ vm_name }}",
                           "text/cloud-config\n\na: [1, 2"),
         "userdata 'u' (MIME part 1) is not valid YAML on line 1"),
        (MULTIPART.replace("Content-Type: text/x-shellscript\n", ""),
         "MIME part 1 has no valid Content-Type header"),
    ],
)  # fmt: skip
def test_refusals_say_why(text, reason):
    assert reason in refusal(text)


def test_a_yaml_bomb_is_checked_without_expanding_it():
    lines = ["#cloud-config", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    userdata.check("userdata 'u'", "\n".join(lines) + "\n")


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "userdata 'u' is empty"),
        (" \n\n", "userdata 'u' is empty"),
        ("#!/bin/sh\n\x00\n", "has a control character (0x00) on line 2"),
        ("#!/bin/sh\n\n\x1b[0m\n", "has a control character (0x1b) on line 3"),
        ("#!/bin/sh\n" + "x" * provisioner_records.TEXT_MAX, "is too large: "),
        ("#!/bin/sh\n" + "\x7f", "control character (0x7f)"),
    ],
)
def test_texts_are_bounded(text, reason):
    with pytest.raises(InvalidInput) as caught:
        check_text("userdata", "u", text)
    assert reason in caught.value.message


def test_the_bound_counts_bytes_as_stored():
    # "é" is 2 bytes of UTF-8 but 6 stored (\u00e9): a third of the bound fills it
    check_text("script", "s", "é" * (provisioner_records.TEXT_MAX // 6 - 100))
    with pytest.raises(InvalidInput, match="as stored"):
        check_text("script", "s", "é" * (provisioner_records.TEXT_MAX // 6 + 1))


def test_the_cli_reads_no_more_than_is_stored():
    assert cli.FILE_MAX == provisioner_records.TEXT_MAX


SCRIPT = "class VMBuilderScript(VMBuilder):\n    def install(self):\n        self.log('hi')\n"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("class VMBuilderScript(VMBuilder)\n    pass\n", "does not compile: expected ':' (line 1)"),
        ("x = 1\n\ndef f(:\n", "does not compile: invalid syntax (line 3)"),
        ("return 5\n", "does not compile: 'return' outside function (line 1)"),
        ("class Other(VMBuilder):\n    pass\n", "does not define class VMBuilderScript"),
        ("def f():\n    class VMBuilderScript:\n        pass\n", "does not define class"),
        ("import os\nos.system('touch /tmp/pvc-h2-never')\n", "does not define class"),
    ],
)
def test_scripts_must_compile_and_define_the_class(text, reason):
    with pytest.raises(InvalidInput) as caught:
        check_script("s", text)
    assert caught.value.message.startswith("script 's' ")
    assert reason in caught.value.message
    assert not Path("/tmp/pvc-h2-never").exists()


def test_a_script_defining_the_class_is_accepted():
    check_script("s", SCRIPT)
    check_script("s", "import os\n\nVMBuilderScript = None\nclass VMBuilderScript: pass\n")


def test_arguments_are_key_value_pairs():
    pairs = ["image=debian-12", "size=", "url=http://x/?a=b"]
    assert parse_arguments(pairs) == {"image": "debian-12", "size": "", "url": "http://x/?a=b"}


@pytest.mark.parametrize(
    "pairs, reason",
    [
        (["image"], "invalid script argument 'image': give key=value"),
        (["=x"], "invalid script argument '=x'"),
        (["1a=x"], "invalid script argument '1a=x'"),
        (["a-b=x"], "invalid script argument 'a-b=x'"),
        (["é=x"], "invalid script argument"),
        (["a=1", "a=2"], "script argument 'a' is given more than once"),
        (["a=x\x01y"], "its value must be one line"),
        (["a=" + "x" * 1025], "at most 1024 characters"),
        ([f"a{i}=x" for i in range(65)], "a profile has at most 64 script arguments"),
    ],
)
def test_bad_arguments_are_refused(pairs, reason):
    with pytest.raises(InvalidInput) as caught:
        parse_arguments(pairs)
    assert reason in caught.value.message
