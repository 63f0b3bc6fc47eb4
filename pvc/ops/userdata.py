"""cloud-init userdata: what pvc accepts as a profile's userdata, and its placeholders.

A userdata is one of the three documents cloud-init reads: `#cloud-config` YAML (a mapping),
a MIME multipart document with at least one part, or a script (`#!`). Anything else is
refused when it is stored, with the reason (the YAML error's line), not found out by a guest
that silently ignores it at boot.

Placeholders `{{ name }}` (spaces optional) are filled in per VM by the metadata service
(render_userdata) with VARIABLES. An unknown one is refused when the userdata is stored.
The document is checked as rendered with sample values, since `{{ x }}` on its own is a YAML
flow mapping, not the text it stands for; the values are names or a UUID (no line breaks),
so line numbers are those of the stored text.
"""

import email
import re

import yaml

from pvc.errors import InvalidInput
from pvc.limits import one_line

VARIABLES = ("vm_name", "vm_uuid", "hostname", "profile")
SAMPLE = {
    "vm_name": "vm",
    "vm_uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "vm",
    "profile": "profile",
}
PLACEHOLDER = re.compile(r"\{\{[ \t]*([^{}\n]*?)[ \t]*\}\}")
CLOUD_CONFIG = "#cloud-config"
_MIME_HEADER = re.compile(r"(?i)(content-type|mime-version)[ \t]*:")
REASON_MAX = 200  # characters of a parser's message quoted in a refusal


def render_userdata(text: str, variables: dict[str, str]) -> str:
    """`text` with each placeholder `{{ name }}` of `variables` replaced by its value."""
    return PLACEHOLDER.sub(lambda match: variables.get(match.group(1), match.group(0)), text)


def text_format(text: str) -> str | None:
    """ "cloud-config", "script" or "multipart", from how the text begins; None: none of them."""
    first_line = text.split("\n", 1)[0].rstrip()
    if first_line == CLOUD_CONFIG:
        return "cloud-config"
    if text.startswith("#!"):
        return "script"
    if _MIME_HEADER.match(text):
        return "multipart"
    return None


def check(what: str, text: str) -> None:
    """Refuses (InvalidInput starting with `what`) a text cloud-init would not take, or one
    with an unknown placeholder."""
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) not in VARIABLES:
            line = text.count("\n", 0, match.start()) + 1
            raise InvalidInput(
                f"{what} has an unknown placeholder {one_line(match.group(0), 60)} on line "
                f"{line}: the known ones are {', '.join(VARIABLES)}"
            )
    rendered = render_userdata(text, SAMPLE)
    found = text_format(text)
    if found == "cloud-config":
        _check_yaml(what, rendered)
    elif found == "multipart":
        _check_multipart(what, rendered)
    elif found is None:
        raise InvalidInput(
            f"{what} is not cloud-init userdata: it must begin with a line '{CLOUD_CONFIG}' "
            "(YAML), '#!' (a script) or a MIME header 'Content-Type: multipart/...'"
        )


def _check_yaml(what: str, text: str) -> None:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" on line {mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(
            f"{what} is not valid YAML{where}: {one_line(reason, REASON_MAX)}"
        ) from None
    except RecursionError:
        raise InvalidInput(f"{what} is not valid YAML: it nests too deeply") from None
    if not isinstance(document, dict):
        kind = "nothing" if document is None else f"a {type(document).__name__}"
        raise InvalidInput(f"{what}: #cloud-config must be a YAML mapping (key: value), not {kind}")


def _check_multipart(what: str, text: str) -> None:
    message = email.message_from_string(text)
    if message.get_content_maintype() != "multipart":
        raise InvalidInput(
            f"{what}: a MIME document must be of Content-Type multipart/..., not "
            f"{one_line(message.get_content_type(), 80)}"
        )
    if message.defects:
        reason = (type(message.defects[0]).__doc__ or "").strip()
        raise InvalidInput(f"{what} is not a valid MIME multipart document: {reason}")
    if not message.get_payload():
        raise InvalidInput(f"{what}: the MIME multipart document has no parts")
    for number, part in enumerate(message.walk(), start=1):
        if part.is_multipart():
            continue
        if part.defects or not part.get("Content-Type"):
            raise InvalidInput(f"{what}: MIME part {number - 1} has no valid Content-Type header")
        if part.get_content_type() == "text/cloud-config":  # cloud-init reads it as one
            body = part.get_payload(decode=True) or b""
            _check_yaml(f"{what} (MIME part {number - 1})", body.decode("utf-8", "replace"))
