"""Userdata, install scripts and profiles: the provisioner's records other than templates,
stored through pvc.ops.provisioner_store (whose docstring fixes their shapes).

Userdata and scripts are texts checked when they are stored, so a VM build never meets a bad
one: userdata is what cloud-init reads (pvc.ops.userdata), a script must compile and define
`class VMBuilderScript` (checked with ast, never run here). Each text is at most TEXT_MAX
bytes as stored: a profile's transaction rewrites the userdata and the script it names
(provisioner_store.referenced), and the whole must stay below limits.TRANSACTION_MAX, since
Zookeeper drops a session that sends more than 1 MiB.

A profile is written with the records it names in one transaction guarded by their versions,
so a concurrent removal of one of them fails instead of leaving the profile naming nothing.
Removing a profile is allowed at any time: a VM keeps the name it was built from
(domain.profile).
"""

import ast
import re
from typing import Any

from pvc import limits
from pvc.errors import Conflict, InvalidInput
from pvc.ops import provisioner_store, user_input, userdata
from pvc.ops.cluster import require_initialized
from pvc.ops.userdata import render_userdata as render_userdata  # the metadata service's
from pvc.zk import schema
from pvc.zk.store import Store

TEXT_KINDS = ("userdata", "script")
TEXT_MAX = 256 * 1024  # bytes of a userdata's or script's record as stored (JSON)
SCRIPT_CLASS = "VMBuilderScript"
PROFILE_TYPES = ("provisioner", "ova")
REFERENCES = tuple(provisioner_store.PROFILE_REFERENCES)
ARGUMENTS_MAX = 64  # script arguments of one profile
ARGUMENT_MAX = 1024  # characters of one argument's value
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(kind: str, name: str, text: Any) -> str:
    """`text` if it can be stored as the record's text: a non-empty string without control
    characters (other than tab and line breaks), at most TEXT_MAX bytes as stored."""
    what = provisioner_store.label(kind, name)
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{what} is empty")
    control = _CONTROL.search(text)
    if control:
        line = text.count("\n", 0, control.start()) + 1
        raise InvalidInput(
            f"{what} has a control character ({ord(control.group()):#04x}) on line {line}"
        )
    stored = len(schema.encode({"name": name, "text": text}))
    if stored > TEXT_MAX:
        raise InvalidInput(
            f"{what} is too large: {stored} bytes as stored (JSON-escaped), at most {TEXT_MAX}"
        )
    return text


def check_script(name: str, text: str) -> None:
    """Refuses a script that does not compile (the compiler's message and line) or does not
    define class VMBuilderScript at its top level. Nothing of it is run."""
    what = provisioner_store.label("script", name)
    try:
        compile(text, what, "exec", dont_inherit=True)
        tree = ast.parse(text)
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        raise InvalidInput(f"{what} does not compile: {exc.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise InvalidInput(f"{what} does not compile: {limits.one_line(str(exc))}") from None
    if not any(isinstance(node, ast.ClassDef) and node.name == SCRIPT_CLASS for node in tree.body):
        raise InvalidInput(
            f"{what} does not define class {SCRIPT_CLASS} (the install script: "
            f"class {SCRIPT_CLASS}(VMBuilder): ...)"
        )


def _check(kind: str, name: str, text: Any) -> str:
    user_input.require_name(name, f"{provisioner_store.LABELS[kind]} name")
    check_text(kind, name, text)
    if kind == "userdata":
        userdata.check(provisioner_store.label(kind, name), text)
    else:
        check_script(name, text)
    return text


def add_text(store: Store, kind: str, name: str, text: str) -> dict[str, Any]:
    """Adds a userdata or a script (`kind`) after checking its text."""
    return provisioner_store.add(store, kind, name, {"text": _check(kind, name, text)})


def modify_text(store: Store, kind: str, name: str, text: str) -> dict[str, Any]:
    """Replaces a userdata's or a script's text; the profiles naming it use the new one."""
    _, version = provisioner_store.read_versioned(store, kind, name)
    return provisioner_store.replace(store, kind, name, {"text": _check(kind, name, text)}, version)


def remove(store: Store, kind: str, name: str) -> dict[str, Any]:
    """Removes a userdata, script or profile; a userdata or script a profile names is refused
    with the profile's name."""
    return provisioner_store.remove(store, kind, name)


def _described(kind: str, record: dict[str, Any], profiles: list[str]) -> dict[str, Any]:
    text = record["text"]
    text_format = userdata.text_format(text) if kind == "userdata" else "python"
    size = len(text.encode())
    return record | {"format": text_format, "bytes": size, "profiles": profiles}


def _users(store: Store, kind: str) -> dict[str, list[str]]:
    """Record name -> the profiles naming it (sorted), for every record of `kind`."""
    references = provisioner_store.PROFILE_REFERENCES
    fields = [field for field, named in references.items() if named == kind]
    found: dict[str, list[str]] = {}
    for profile in provisioner_store.list_records(store, "profile"):
        for name in {profile.get(field) for field in fields} - {None}:
            found.setdefault(name, []).append(profile["name"])
    return found


def text_info(store: Store, kind: str, name: str) -> dict[str, Any]:
    """A userdata or script: its text, format, size in bytes and the profiles naming it."""
    record = provisioner_store.read(store, kind, name)
    return _described(kind, record, _users(store, kind).get(name, []))


def list_texts(store: Store, kind: str, limit: str | None = None) -> list[dict[str, Any]]:
    """Every userdata or script (whose name contains `limit`), described as text_info."""
    users = _users(store, kind)
    return [
        _described(kind, record, users.get(record["name"], []))
        for record in provisioner_store.list_records(store, kind, limit)
    ]


KEY_VALUE = "give key=value, the key letters, digits and '_', not starting with a digit"


def parse_arguments(pairs: list[str]) -> dict[str, str]:
    """Script arguments from "key=value" pairs, each key once (see require_arguments)."""
    if len(pairs) > ARGUMENTS_MAX:
        raise InvalidInput(f"a profile has at most {ARGUMENTS_MAX} script arguments")
    arguments: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise InvalidInput(f"invalid script argument {user_input.quoted(pair)}: {KEY_VALUE}")
        if key in arguments:
            raise InvalidInput(f"script argument '{key}' is given more than once")
        arguments[key] = value
    return require_arguments(arguments)


def require_arguments(arguments: dict[str, Any]) -> dict[str, str]:
    """`arguments` if each key is a Python identifier (ASCII) and each value one line of at
    most ARGUMENT_MAX characters; a profile's, and a create's overriding them."""
    if len(arguments) > ARGUMENTS_MAX:
        raise InvalidInput(f"a profile has at most {ARGUMENTS_MAX} script arguments")
    for key, value in arguments.items():
        if not isinstance(key, str) or not key.isidentifier() or not key.isascii():
            raise InvalidInput(
                f"invalid script argument {user_input.quoted(f'{key}={value}')}: {KEY_VALUE}"
            )
        if not isinstance(value, str) or len(value) > ARGUMENT_MAX or _not_one_line(value):
            raise InvalidInput(
                f"script argument '{key}': its value must be one line of at most "
                f"{ARGUMENT_MAX} characters, without control characters"
            )
    return arguments


def _not_one_line(value: str) -> bool:
    """True when `value` holds a control character or a line break."""
    return bool(_CONTROL.search(value)) or "\n" in value or "\r" in value


def _profile(name: str, current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`current` with `changes` (type; the names of records, an empty one clearing its field;
    arguments as "key=value" pairs), checked as a whole: a provisioner profile needs a
    system template and names no OVA; an OVA profile needs an OVA."""
    profile = dict(current)
    for field, value in changes.items():
        if field in REFERENCES:
            profile[field] = value or None
        elif field == "arguments":
            profile[field] = parse_arguments(value)
        else:
            profile[field] = value
    what = provisioner_store.label("profile", name)
    if profile["type"] not in PROFILE_TYPES:
        raise InvalidInput(
            f"invalid profile type {user_input.quoted(profile['type'])}: provisioner or ova"
        )
    if profile["type"] == "provisioner" and not profile["system_template"]:
        raise InvalidInput(f"{what} needs a system template (type provisioner)")
    if profile["type"] == "provisioner" and profile["ova"]:
        raise InvalidInput(f"{what} names an OVA: only a profile of type ova can")
    if profile["type"] == "ova" and not profile["ova"]:
        raise InvalidInput(f"{what} needs an OVA (type ova)")
    for field in REFERENCES:
        if profile[field] is not None:
            kind = provisioner_store.PROFILE_REFERENCES[field]
            user_input.require_name(profile[field], f"{provisioner_store.LABELS[kind]} name")
    return profile


def _write_profile(store: Store, name: str, profile: dict[str, Any], version: int) -> None:
    """One transaction: the profile (at `version`; -1: new) and, unchanged and guarded, each
    record it names (NotFound naming a missing one)."""
    values, expect = provisioner_store.referenced(store, profile)
    key = provisioner_store.key("profile", name)
    store.write({**values, key: {**profile, "name": name}}, expect={**expect, key: version})


def add_profile(store: Store, name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Adds a profile from `fields` (type, default provisioner; the names of its records;
    arguments: "key=value" pairs)."""
    user_input.require_name(name, "profile name")
    require_initialized(store)
    empty = {"type": "provisioner", "arguments": {}} | dict.fromkeys(REFERENCES)
    profile = _profile(name, empty, fields)
    if store.exists(provisioner_store.key("profile", name)):
        raise Conflict(f"{provisioner_store.label('profile', name)} already exists")
    _write_profile(store, name, profile, -1)
    return {"message": f"profile '{name}' added", "name": name}


def modify_profile(store: Store, name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Changes the given fields of a profile (`arguments` replaces all of them)."""
    current, version = provisioner_store.read_versioned(store, "profile", name)
    if not changes:
        raise InvalidInput(
            "nothing to change: give a type, a template, userdata, script, ova or arguments"
        )
    _write_profile(store, name, _profile(name, current, changes), version)
    return {"message": f"profile '{name}' modified", "name": name}


def counts(store: Store) -> dict[str, int]:
    """How many records of each kind there are."""
    return {kind: len(provisioner_store.names(store, kind)) for kind in provisioner_store.KINDS}
