"""pvc.spec: the configuration (API key, Zookeeper secret) is generated on the machine at
install time, never at build time, where every install of one package would share it."""

import re

from tests.conftest import REPO

SPEC = (REPO / "pvc.spec").read_text()
SECTION = re.compile(r"^%(prep|build|install|check|pre|post|preun|postun|files)\b.*$", re.M)


def sections() -> dict[str, str]:
    """The spec's scriptlets and file list, by name."""
    found, marks = {}, list(SECTION.finditer(SPEC))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(SPEC)
        found[mark.group(1)] = SPEC[mark.end() : end]
    return found


def test_no_configuration_is_generated_or_packaged_at_build_time():
    parts = sections()
    for name in ("prep", "build", "install", "check"):
        assert "config sample" not in parts.get(name, ""), name
    assert "pvc.conf" not in parts["files"]


def test_the_configuration_is_generated_at_install_only_when_missing_and_private():
    post = sections()["post"]
    assert "/usr/bin/pvc config sample" in post
    assert '[ ! -e "$conf" ]' in post and "conf=/etc/pvc/pvc.conf" in post
    assert "umask 077" in post
