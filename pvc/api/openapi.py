"""The OpenAPI 3 document, generated from the bottle routes and the endpoint metadata on them.

Nothing here is written by hand per endpoint: adding an `@endpoint` adds it to the document,
with the bounds its Params check (pvc.api.params), so a client that follows the document is
never refused for valid data, and data the document calls invalid is refused with 400.
Parameters are query parameters for GET and DELETE; POST and PUT take them as a JSON object
or a URL-encoded form body (the API also takes them in the query string). Every status an
endpoint can answer is listed: its own (404, 409, 202...), and those of every request (400 for
a bad or unknown parameter, 401 without a valid key, 413 and 431 for a body or headers over
the limits, 415 for a body of another type, 503 when Zookeeper is out of reach).
"""

from typing import Any

import bottle

import pvc
from pvc import limits

_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")
_EVERY_REQUEST = {
    400: "Bad or unknown parameter, a path argument that is not a name, a body where the "
    "endpoint takes none, or text that is not UTF-8",
    413: f"The request body is larger than {limits.BODY_MAX} bytes",
    431: f"The request's headers are larger than {limits.HEADER_MAX} bytes",
}
_WITH_BODY = {415: f"The request body is not {' or '.join(_BODY_TYPES)}"}
_WITH_ZOOKEEPER = {503: "Zookeeper cannot be reached"}


def record(*required: str, **properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON object with the `required` string fields, other `properties`, and more."""
    fields = {name: {"type": "string"} for name in required} | properties
    return {"type": "object", "required": list(required), "properties": fields}


def listing(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


MESSAGE = record("message")  # what a verb answers
# what a verb answers that makes a task, or does its work at once (task null)
MAYBE_TASK = record("message", task={"type": "string", "nullable": True})


def param_schema(param: Any) -> dict[str, Any]:
    """A Param's JSON schema: the bounds pvc.api.params checks."""
    schema: dict[str, Any] = {"type": _TYPES[param.kind]}
    if param.choices is not None:
        schema["enum"] = list(param.choices)
    if param.default is not None:
        schema["default"] = param.default
    if param.max_length is not None or param.max_bytes is not None:
        # a bound on bytes of UTF-8 also bounds characters; the description says bytes
        schema["maxLength"] = param.max_length or param.max_bytes
    if param.pattern is not None:
        schema["pattern"] = param.pattern
    if param.minimum is not None:
        schema["minimum"] = param.minimum
        if param.exclusive_minimum:
            schema["exclusiveMinimum"] = True
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    return schema


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _request_body(ep: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {p.name: {**param_schema(p), "description": p.doc} for p in ep.params},
    }
    required = [p.name for p in ep.params if p.required]
    if required:
        body["required"] = required
    return {
        "required": bool(required),
        "content": {media_type: {"schema": body} for media_type in _BODY_TYPES},
    }


def _parameter(param: Any, where: str) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": where,
        "required": param.required,
        "description": param.doc,
        "schema": param_schema(param),
    }


def _responses(ep: Any) -> dict[str, Any]:
    errors = dict(_EVERY_REQUEST)
    if ep.takes_body:
        errors |= _WITH_BODY
    if ep.octets:
        errors |= {415: "The request body is not application/octet-stream"}
    if not ep.public:
        errors |= {401: "Missing or invalid API key"} | _WITH_ZOOKEEPER
    errors |= ep.responses
    answers = {"200": {"description": "Success", "content": _json(ep.returns)}}
    for status, description in sorted(errors.items()):
        schema = ep.returns if status < 300 else _ERROR
        answers[str(status)] = {"description": description, "content": _json(schema)}
    return answers


def _operation(ep: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": ep.summary,
        "tags": list(ep.tags),
        # unique across route modules: routes/vm.py and routes/node.py may both have get_node
        "operationId": f"{ep.func.__module__.rsplit('.', 1)[-1]}_{ep.func.__name__}",
        "responses": _responses(ep),
    }
    parameters = [_parameter(p, "path") for p in ep.path_params]
    if ep.takes_body:
        operation["requestBody"] = _request_body(ep)
    else:
        parameters += [_parameter(p, "query") for p in ep.params]
    if ep.octets:
        binary = {"schema": {"type": "string", "format": "binary"}}
        operation["requestBody"] = {"content": {"application/octet-stream": binary}}
    if parameters:
        operation["parameters"] = parameters
    if ep.public:
        operation["security"] = []
    return operation


def document(app: bottle.Bottle, prefix: str, path_arg: Any) -> dict[str, Any]:
    """The OpenAPI 3.0 document for every route of `app` that carries an endpoint;
    `path_arg` is the pattern of bottle's path arguments (pvc.api.app.PATH_ARG)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.routes:
        ep = route.config.get("endpoint")
        if ep is None:
            continue
        path = path_arg.sub(r"{\1}", ep.path)
        paths.setdefault(path, {})[ep.method.lower()] = _operation(ep)
    paths["/openapi.json"] = {
        "get": {
            "summary": "This document",
            "tags": ["root"],
            "operationId": "get_openapi",
            "security": [],
            "responses": {
                "200": {"description": "The OpenAPI document", "content": _json({"type": "object"})}
            },
        }
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "pvc API",
            "version": pvc.__version__,
            "description": "The REST API of pvc, a KVM, Ceph and Zookeeper private cloud. "
            f"A request body is at most {limits.BODY_MAX} bytes, nested at most "
            f"{limits.JSON_DEPTH_MAX} deep; text is UTF-8.",
            "license": {"name": "GPL-3.0-or-later"},
        },
        "servers": [{"url": prefix}],
        "security": [{"ApiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
            "schemas": {"Error": record("message")},
        },
    }
