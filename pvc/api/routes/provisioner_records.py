"""Provisioner endpoints for userdata, install scripts and profiles
(pvc.ops.provisioner_records), and GET /provisioner: how many records of each kind there are.

Userdata and scripts have the same five endpoints, registered once for each kind; their text
travels in the `data` field of a JSON or form body. A profile's script arguments travel as
one `arguments` field: "key=value" pairs, one per line.
"""

from collections.abc import Callable
from typing import Any

from pvc.api.app import Context, endpoint
from pvc.api.openapi import MESSAGE, listing, record
from pvc.api.params import NAME_DOC, NAME_PATTERN, Param, name_param
from pvc.limits import NAME_MAX, PATTERN_MAX
from pvc.ops import provisioner_records, provisioner_store
from pvc.ops.provisioner_records import ARGUMENT_MAX, ARGUMENTS_MAX, TEXT_MAX

TAGS = ("provisioner",)
TEXT = record(
    "name",
    "text",
    "format",
    bytes={"type": "integer"},
    profiles={"type": "array", "items": {"type": "string"}},
)
PROFILE = record("name", "type", arguments={"type": "object"})
TEXT_DOCS = {
    "userdata": (
        "cloud-init userdata: '#cloud-config' YAML (a mapping), a MIME multipart document, or "
        "a script ('#!'); placeholders {{ vm_name }}, {{ vm_uuid }}, {{ hostname }}, "
        "{{ profile }} are filled in per VM"
    ),
    "script": "An install script: Python defining class VMBuilderScript(VMBuilder)",
}
REMOVE_REFUSED = "A profile uses it (named), or it changed meanwhile"
# A name, or empty (PUT: clears the field).
NAME_OR_EMPTY = f"^(?:{NAME_PATTERN[1:-1]})?$"
ARGUMENTS_LENGTH = ARGUMENTS_MAX * (ARGUMENT_MAX + 2 * 64)


def limit_param(what: str) -> Param:
    return Param("limit", str, f"Only the {what} whose name contains this text",
                 max_length=PATTERN_MAX)  # fmt: skip


def _register(method: str, path: str, name: str, func: Callable[..., Any], **details: Any) -> None:
    """Registers `func` under `name` (the OpenAPI operationId is made from it)."""
    func.__name__ = name
    endpoint(method, path, tags=TAGS, **details)(func)


def _text_endpoints(kind: str) -> None:
    """GET|POST /provisioner/<kind>, GET|PUT|DELETE /provisioner/<kind>/<kind>."""
    what = provisioner_store.LABELS[kind]
    data = Param("data", str, f"{TEXT_DOCS[kind]}; at most {TEXT_MAX} bytes as stored "
                 "(JSON-escaped)", required=True, max_bytes=TEXT_MAX)  # fmt: skip
    refused = f"Bad parameter, or the text is not {what} pvc accepts (the reason is given)"
    one = f"/provisioner/{kind}/<{kind}>"
    not_found = f"No such {what}, or the cluster is not initialised"

    def get_all(ctx: Context, limit: str | None) -> list[dict[str, Any]]:
        return provisioner_records.list_texts(ctx.zk, kind, limit)

    def post(ctx: Context, name: str, data: str) -> dict[str, Any]:
        return provisioner_records.add_text(ctx.zk, kind, name, data)

    def get_one(ctx: Context, **path: str) -> dict[str, Any]:
        return provisioner_records.text_info(ctx.zk, kind, path[kind])

    def put(ctx: Context, data: str, **path: str) -> dict[str, Any]:
        return provisioner_records.modify_text(ctx.zk, kind, path[kind], data)

    def delete(ctx: Context, **path: str) -> dict[str, Any]:
        return provisioner_records.remove(ctx.zk, kind, path[kind])

    _register("GET", f"/provisioner/{kind}", f"get_{kind}_list", get_all,
              summary=f"Every {what}: text, format, size, the profiles using it",
              params=(limit_param(what),), responses={404: "The cluster is not initialised"},
              returns=listing(TEXT))  # fmt: skip
    _register("POST", f"/provisioner/{kind}", f"post_{kind}", post, summary=f"Add a {what}",
              params=(name_param("name", f"The {what}'s name", f"{what} name", required=True),
                      data),
              responses={400: refused, 404: "The cluster is not initialised",
                         409: f"A {what} of this name exists"},
              returns=MESSAGE)  # fmt: skip
    _register("GET", one, f"get_{kind}", get_one, summary=f"One {what}",
              responses={404: not_found}, returns=TEXT)  # fmt: skip
    _register("PUT", one, f"put_{kind}", put, summary=f"Replace a {what}'s text",
              params=(data,), responses={400: refused, 404: not_found,
                                         409: "It changed meanwhile"},
              returns=MESSAGE)  # fmt: skip
    _register("DELETE", one, f"delete_{kind}", delete, summary=f"Remove a {what}",
              responses={404: not_found, 409: REMOVE_REFUSED}, returns=MESSAGE)  # fmt: skip


for _kind in provisioner_records.TEXT_KINDS:
    _text_endpoints(_kind)


@endpoint(
    "GET",
    "/provisioner",
    summary="How many records of each kind the provisioner has",
    tags=TAGS,
    responses={404: "The cluster is not initialised"},
    returns={"type": "object", "additionalProperties": {"type": "integer"}},
)
def get_provisioner(ctx: Context) -> dict[str, int]:
    return provisioner_records.counts(ctx.zk)


def _reference(field: str) -> Param:
    kind = provisioner_store.PROFILE_REFERENCES[field]
    what = provisioner_store.LABELS[kind]
    return Param(field, str, f"The {what} (a name: {NAME_DOC}); empty: none", max_length=NAME_MAX,
                 pattern=NAME_OR_EMPTY, label=f"{what} name", rule=NAME_DOC)  # fmt: skip


def _profile_params(default_type: str | None) -> tuple[Param, ...]:
    return (
        Param("profile_type", str, "provisioner (needs a system template) or ova (needs an OVA)",
              choices=provisioner_records.PROFILE_TYPES, default=default_type),
        *(_reference(field) for field in provisioner_records.REFERENCES),
        Param("arguments", str, f"The install script's arguments: key=value, one per line, "
              f"at most {ARGUMENTS_MAX}; a key is letters, digits and '_'; a value at most "
              f"{ARGUMENT_MAX} characters; replaces all of them", max_length=ARGUMENTS_LENGTH),
    )  # fmt: skip


def _fields(profile_type: str | None, arguments: str | None, **names: str | None) -> dict:
    """The profile fields given (None: not given) as pvc.ops.provisioner_records takes them."""
    fields: dict[str, Any] = {field: value for field, value in names.items() if value is not None}
    if profile_type is not None:
        fields["type"] = profile_type
    if arguments is not None:
        fields["arguments"] = [line for line in arguments.splitlines() if line.strip()]
    return fields


PROFILE_REFUSED = (
    "Bad parameter or script argument, a provisioner profile without a system template or "
    "with an OVA, or an ova profile without an OVA"
)
PROFILE_MISSING = "A record it names does not exist (named), or the cluster is not initialised"
PROFILE_NOT_FOUND = "No such profile or record it names (named), or the cluster is not initialised"


@endpoint(
    "GET",
    "/provisioner/profile",
    summary="Every profile",
    tags=TAGS,
    params=(limit_param("profiles"),),
    responses={404: "The cluster is not initialised"},
    returns=listing(PROFILE),
)
def get_profiles(ctx: Context, limit: str | None) -> list[dict[str, Any]]:
    return provisioner_store.list_records(ctx.zk, "profile", limit)


@endpoint(
    "POST",
    "/provisioner/profile",
    summary="Add a profile: what a VM is built from",
    tags=TAGS,
    params=(name_param("name", "The profile's name", "profile name", required=True),
            *_profile_params("provisioner")),  # fmt: skip
    responses={400: PROFILE_REFUSED, 404: PROFILE_MISSING,
               409: "A profile of this name exists, or a record it names changed meanwhile"},
    returns=MESSAGE,
)  # fmt: skip
def post_profile(ctx: Context, name: str, **fields: str | None) -> dict[str, Any]:
    return provisioner_records.add_profile(ctx.zk, name, _fields(**fields))


@endpoint(
    "GET",
    "/provisioner/profile/<profile>",
    summary="One profile",
    tags=TAGS,
    responses={404: "No such profile, or the cluster is not initialised"},
    returns=PROFILE,
)
def get_profile(ctx: Context, profile: str) -> dict[str, Any]:
    return provisioner_store.read(ctx.zk, "profile", profile)


@endpoint(
    "PUT",
    "/provisioner/profile/<profile>",
    summary="Change the given fields of a profile",
    tags=TAGS,
    params=_profile_params(None),
    responses={400: PROFILE_REFUSED + ", or nothing to change", 404: PROFILE_NOT_FOUND,
               409: "It or a record it names changed meanwhile"},
    returns=MESSAGE,
)  # fmt: skip
def put_profile(ctx: Context, profile: str, **fields: str | None) -> dict[str, Any]:
    return provisioner_records.modify_profile(ctx.zk, profile, _fields(**fields))


@endpoint(
    "DELETE",
    "/provisioner/profile/<profile>",
    summary="Remove a profile (VMs built from it keep its name)",
    tags=TAGS,
    responses={404: "No such profile, or the cluster is not initialised"},
    returns=MESSAGE,
)
def delete_profile(ctx: Context, profile: str) -> dict[str, Any]:
    return provisioner_records.remove(ctx.zk, "profile", profile)
