"""Request parameters: what each endpoint accepts, checked before any op runs.

A `Param` states a parameter's type and bounds (length, pattern, range, choices); the same
statement is checked here and written into the OpenAPI document (pvc.api.openapi), so the two
cannot disagree. Values come as text (a query string, a form) or typed (a JSON body): text is
read strictly ("1_0", " 5", "1e400", "NaN" are not numbers), and a JSON value must already
have the documented type (a JSON string "true" is not a boolean). Every string must be valid
Unicode text: JSON can carry lone surrogates ("\\ud800") that no UTF-8 store accepts.
"""

import math
import re
from dataclasses import dataclass
from typing import Any

from pvc import limits
from pvc.errors import InvalidInput
from pvc.zk.schema import UUID_FORM

# A path component (a tag; a VM given by name or UUID): limits.NAME_MAX characters of the
# name characters. A name (node, VM, task, cluster) is one not in UUID form: the document
# states both as ECMA patterns; tests/unit/test_api_params.py checks they agree with
# pvc.zk.schema. Every pattern here is unambiguous (no two ways to match a text), so checking a
# hostile text against it takes linear time.
COMPONENT_CHARACTERS = rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{limits.NAME_MAX - 1}}}"
COMPONENT_PATTERN = f"^{COMPONENT_CHARACTERS}$"
NAME_PATTERN = f"^(?!{UUID_FORM}$){COMPONENT_CHARACTERS}$"
COMPONENT_DOC = (
    f"letters, digits, '.', '-' and '_', starting with a letter or digit; at most "
    f"{limits.NAME_MAX} characters"
)
NAME_DOC = f"{COMPONENT_DOC}; not in the form of a UUID"


def name_list_pattern(max_items: int, names: bool = True) -> str:
    """Comma-separated names (or with `names` false, path components such as tags), at most
    `max_items`; spaces around them and empty items, as in "a,,b", are allowed and dropped.
    An item is spaces, then optionally a name and spaces: one way only to match any text."""
    not_uuid = f"(?!{UUID_FORM} *(?:,|$))" if names else ""
    item = f" *(?:{not_uuid}{COMPONENT_CHARACTERS} *)?"
    return f"^{item}(?:,{item}){{0,{max_items - 1}}}$"


def name_list_rule(max_items: int, names: bool = True) -> str:
    what, rule = ("names", NAME_DOC) if names else ("tags", COMPONENT_DOC)
    return f"comma-separated {what} ({rule}), at most {max_items}"


def name_list_length(max_items: int) -> int:
    """The longest list name_list_pattern(max_items) accepts without spaces."""
    return max_items * (limits.NAME_MAX + 1) - 1


@dataclass(frozen=True)
class Param:
    """One request parameter, from the query string, a form or a JSON object body."""

    name: str
    kind: type = str  # str, int, float or bool
    doc: str = ""
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] | None = None
    max_length: int | None = None  # characters
    max_bytes: int | None = None  # bytes of UTF-8 (documented as a bound on characters)
    pattern: str | None = None  # a regular expression the whole value matches, ^...$
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # minimum itself is refused
    label: str | None = None  # what the value is, for messages: "node name"
    rule: str | None = None  # what `pattern` allows, in words


class Text(str):
    """A value that came as text (query string, form): converted to the parameter's kind."""


_INTEGER = re.compile(r"-?[0-9]{1,20}")
_NUMBER = re.compile(r"-?(?:0|[0-9]+)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]{1,4})?")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def valid_text(text: str) -> bool:
    """False for a string that is not Unicode text (a lone surrogate from JSON's \\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _from_text(param: Param, text: str) -> Any:
    if param.kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise InvalidInput(f"parameter '{param.name}' must be true or false, not {text!r}")
    if param.kind is int and _INTEGER.fullmatch(text):
        return int(text)
    if param.kind is float and _NUMBER.fullmatch(text):
        return float(text)
    if param.kind in (int, float):
        kind = "an integer" if param.kind is int else "a number"
        raise InvalidInput(f"parameter '{param.name}' must be {kind}, not {text[:40]!r}")
    return str(text)


def _typed(param: Param, value: Any) -> Any:
    """`value` from a JSON body, if it has the parameter's kind."""
    if param.kind is bool:
        if isinstance(value, bool):
            return value
        raise InvalidInput(f"parameter '{param.name}' must be true or false")
    if param.kind in (int, float) and not isinstance(value, bool):
        if param.kind is float and isinstance(value, float):
            return value
        if param.kind is float and isinstance(value, int):
            try:
                return float(value)
            except OverflowError:  # a JSON integer of hundreds of digits
                raise InvalidInput(f"parameter '{param.name}' must be a finite number") from None
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
    if param.kind in (int, float):
        kind = "an integer" if param.kind is int else "a number"
        raise InvalidInput(f"parameter '{param.name}' must be {kind}")
    if not isinstance(value, str):
        raise InvalidInput(f"parameter '{param.name}' must be a string")
    return value


def _bound(number: float) -> str:
    """A bound as people write it: 16777215, not 1.67772e+07."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _check_number(param: Param, value: float) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"parameter '{param.name}' must be a finite number")
    low, high = param.minimum, param.maximum
    too_low = low is not None and (value <= low if param.exclusive_minimum else value < low)
    if too_low or (high is not None and value > high):
        above = "more than" if param.exclusive_minimum else "at least"
        bounds = [f"{above} {_bound(low)}"] if low is not None else []
        bounds += [f"at most {_bound(high)}"] if high is not None else []
        raise InvalidInput(f"parameter '{param.name}' must be {' and '.join(bounds)}")


def _check_string(param: Param, value: str) -> None:
    if not valid_text(value):
        raise InvalidInput(f"parameter '{param.name}' is not valid Unicode text")
    if param.max_length is not None and len(value) > param.max_length:
        raise InvalidInput(f"parameter '{param.name}' is longer than {param.max_length} characters")
    if param.max_bytes is not None and len(value.encode()) > param.max_bytes:
        raise InvalidInput(f"parameter '{param.name}' is larger than {param.max_bytes} bytes")
    if param.choices is not None and value not in param.choices:
        shown = ", ".join(choice for choice in param.choices if choice)
        empty = " (or empty)" if "" in param.choices else ""
        raise InvalidInput(f"parameter '{param.name}' must be one of {shown}{empty}")
    if param.pattern is not None and not re.fullmatch(param.pattern, value):
        rule = param.rule or f"it must match {param.pattern}"
        raise InvalidInput(f"invalid {param.label or param.name} {value[:80]!r}: {rule}")


def convert(param: Param, value: Any) -> Any:
    """`value` (Text or a JSON value) as the parameter's kind, within its bounds."""
    if isinstance(value, Text):
        if not valid_text(value):
            raise InvalidInput(f"parameter '{param.name}' is not valid Unicode text")
        value = _from_text(param, value)
    else:
        value = _typed(param, value)
    if isinstance(value, str):
        _check_string(param, value)
    elif not isinstance(value, bool):
        _check_number(param, value)
    return value


def parse_params(params: tuple[Param, ...], values: dict[str, Any]) -> dict[str, Any]:
    """The endpoint's arguments from the request's `values`: every known parameter, converted
    and checked, its default if not given; unknown or missing required ones are refused."""
    known = {param.name for param in params}
    unknown = sorted(set(values) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        shown = unknown[0][:80].encode("utf-8", "backslashreplace").decode()
        raise InvalidInput(f"unknown parameter {shown!r} (accepted: {accepted})")
    parsed = {}
    for param in params:
        if param.name in values:
            parsed[param.name] = convert(param, values[param.name])
        elif param.required:
            raise InvalidInput(f"parameter '{param.name}' is required")
        else:
            parsed[param.name] = param.default
    return parsed


def name_param(name: str, doc: str, label: str, uuid_form: bool = False, **options: Any) -> Param:
    """A parameter that is one name (a node, a VM, a task...); with `uuid_form`, a name or a
    UUID (a VM)."""
    rule = COMPONENT_DOC if uuid_form else NAME_DOC
    return Param(
        name,
        str,
        f"{doc}: {rule}",
        max_length=limits.NAME_MAX,
        pattern=COMPONENT_PATTERN if uuid_form else NAME_PATTERN,
        label=label,
        rule=rule,
        **options,
    )


def name_list_param(name: str, doc: str, label: str, max_items: int, names: bool = True) -> Param:
    """A parameter that is a comma-separated list of names (a node limit), or with `names`
    false of path components (tags)."""
    rule = name_list_rule(max_items, names)
    return Param(
        name,
        str,
        f"{doc}: {rule}",
        max_length=name_list_length(max_items),
        pattern=name_list_pattern(max_items, names),
        label=label,
        rule=rule,
    )
