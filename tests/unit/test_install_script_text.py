"""What pvc says about an install script's errors without running anything: an exception as
the one line a user reads, and a tool's complaint without its banner or usage text
(pvc.drivers.volume_images). The script checks themselves: tests/unit/test_userdata.py."""

import pytest

from pvc.drivers.volume_images import _complaint
from pvc.errors import NotFound
from pvc.node.install_script import one_line


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
