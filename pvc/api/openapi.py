"""The OpenAPI 3 document, generated from the bottle routes and the endpoint metadata on them.

Nothing here is written by hand per endpoint: adding an `@endpoint` adds it to the document.
Parameters are documented as query parameters for GET and DELETE and as a JSON object body
for POST and PUT (the API also accepts them in the query string or a form).
"""

import re
from typing import Any

import bottle

import pvc

_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
_PATH_ARG = re.compile(r"<([a-zA-Z_][a-zA-Z0-9_]*)(?::[^>]*)?>")
_ERROR = {"$ref": "#/components/schemas/Error"}


def _schema(param: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _TYPES[param.kind]}
    if param.choices:
        schema["enum"] = list(param.choices)
    if param.default is not None:
        schema["default"] = param.default
    return schema


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _operation(ep: Any) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": ep.summary,
        "tags": list(ep.tags),
        # unique across route modules: routes/vm.py and routes/node.py may both have get_node
        "operationId": f"{ep.func.__module__.rsplit('.', 1)[-1]}_{ep.func.__name__}",
        "responses": {"200": {"description": "Success", "content": {"application/json": {}}}},
    }
    path_args = _PATH_ARG.findall(ep.path)
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_args
    ]
    if ep.method in ("POST", "PUT") and ep.params:
        body: dict[str, Any] = {
            "type": "object",
            "additionalProperties": False,
            "properties": {p.name: {**_schema(p), "description": p.doc} for p in ep.params},
        }
        required = [p.name for p in ep.params if p.required]
        if required:
            body["required"] = required
        operation["requestBody"] = {
            "required": bool(required),
            "content": {"application/json": {"schema": body}},
        }
    else:
        parameters += [
            {
                "name": p.name,
                "in": "query",
                "required": p.required,
                "description": p.doc,
                "schema": _schema(p),
            }
            for p in ep.params
        ]
    if parameters:
        operation["parameters"] = parameters
    for status, description in sorted(ep.responses.items()):
        operation["responses"][str(status)] = _error_response(description)
    if ep.public:
        operation["security"] = []
    else:
        operation["responses"]["401"] = _error_response("Missing or invalid API key")
    return operation


def document(app: bottle.Bottle, prefix: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document for every route of `app` that carries an endpoint."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.routes:
        ep = route.config.get("endpoint")
        if ep is None:
            continue
        path = _PATH_ARG.sub(r"{\1}", ep.path)
        paths.setdefault(path, {})[ep.method.lower()] = _operation(ep)
    paths["/openapi.json"] = {
        "get": {
            "summary": "This document",
            "tags": ["root"],
            "operationId": "get_openapi",
            "security": [],
            "responses": {"200": {"description": "The OpenAPI document"}},
        }
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "pvc API",
            "version": pvc.__version__,
            "description": "The REST API of pvc, a KVM, Ceph and Zookeeper private cloud.",
            "license": {"name": "GPL-3.0-or-later"},
        },
        "servers": [{"url": prefix}],
        "security": [{"ApiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"message": {"type": "string"}},
                    "required": ["message"],
                }
            },
        },
    }
