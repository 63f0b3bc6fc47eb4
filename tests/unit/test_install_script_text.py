"""What pvc says about an install script's text and errors without running anything: a
script that does not compile or lacks the class (pvc.node.install_script.check), an
exception as the one line a user reads, and a tool's complaint without its banner or usage
text (pvc.drivers.volume_images)."""

import pytest

from pvc.drivers.volume_images import _complaint
from pvc.errors import NotFound, PvcError
from pvc.node.install_script import check, one_line


def test_a_script_with_the_class_passes():
    check("ok", "import os\n\nclass VMBuilderScript(VMBuilder):\n    pass\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("def f(:\n", "install script 's' does not load: invalid syntax (line 1)"),
        ("x = 1\n", "install script 's' does not define class VMBuilderScript(VMBuilder)"),
        ("def f():\n    class VMBuilderScript(VMBuilder):\n        pass\n",
         "install script 's' does not define class VMBuilderScript(VMBuilder)"),  # not top level
    ],
)  # fmt: skip
def test_a_script_that_cannot_load_is_refused_by_name(text, message):
    with pytest.raises(PvcError) as refused:
        check("s", text)
    assert refused.value.message == message


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (RuntimeError("no network\n  for you"), "no network for you"),
        (NotFound("volume 'p/v' does not exist"), "volume 'p/v' does not exist"),
        (KeyError("release"), "KeyError: 'release'"),
        (ValueError(), "ValueError"),
    ],
)
def test_an_exception_is_one_line_a_user_reads(exc, line):
    assert one_line(exc) == line


@pytest.mark.parametrize(
    ("tool", "output", "said"),
    [
        ("mkfs.ext4", "mke2fs 1.47.0 (5-Feb-2023)\nmkfs.ext4: invalid block size - 999\n",
         "mkfs.ext4: invalid block size - 999"),
        ("mkfs.xfs", "Filesystem must be larger than 300MB.\nUsage: mkfs.xfs\n/* blocksize */\n",
         "mkfs.xfs: Filesystem must be larger than 300MB."),
        ("mount", "mount: /m: wrong fs type.\n       dmesg(1) may have more information.\n",
         "mount: /m: wrong fs type."),
        ("umount", "", "umount: failed"),
    ],
)  # fmt: skip
def test_a_tools_complaint_is_its_first_line_that_says_what_is_wrong(tool, output, said):
    assert _complaint(tool, output) == said
