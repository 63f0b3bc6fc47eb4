"""The REST API as a bottle application: endpoint registry, parameters, errors as JSON.

An endpoint is a plain function registered with `@endpoint(...)`, which also records what the
OpenAPI document needs (summary, tags, parameters), so the document is generated from the
routes themselves (pvc.api.openapi). A request goes: route -> `_handle` (auth, parameter
parsing) -> the endpoint function (one call into pvc.ops) -> JSON. Every error, including
unknown paths and bugs, leaves as `{"message": ...}` with a 4xx/5xx status, never HTML or a
traceback.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bottle

from pvc.api import auth
from pvc.config import Config
from pvc.errors import InvalidInput, PvcError
from pvc.zk.cache import CachedView, open_mirror
from pvc.zk.store import Store

PREFIX = "/api/v1"
log = logging.getLogger("pvc.api")


@dataclass(frozen=True)
class Param:
    """One request parameter, from the query string, a form or a JSON object body."""

    name: str
    kind: type = str  # str, int, float or bool
    doc: str = ""
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # bottle syntax below PREFIX, e.g. "/node/<node>"
    func: Callable[..., Any]
    summary: str
    tags: tuple[str, ...]
    params: tuple[Param, ...] = ()
    public: bool = False  # True: no API key needed
    responses: dict[int, str] = field(default_factory=dict)


ENDPOINTS: list[Endpoint] = []


def endpoint(
    method: str,
    path: str,
    *,
    summary: str,
    tags: tuple[str, ...],
    params: tuple[Param, ...] = (),
    public: bool = False,
    responses: dict[int, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers an endpoint function `func(ctx, **path_args, **params) -> body`.

    The body is JSON-encoded; return `(status, body)` for a status other than 200.
    `responses` names the error statuses the endpoint can answer, for the OpenAPI document.
    """

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        ENDPOINTS.append(
            Endpoint(method, path, func, summary, tags, params, public, dict(responses or {}))
        )
        return func

    return register


@dataclass
class Context:
    """What endpoints get: the cluster's state (a CachedView) and the configuration."""

    zk: Store
    config: Config


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _convert(param: Param, value: Any) -> Any:
    if param.kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in _TRUE + _FALSE:
            return str(value).lower() in _TRUE
        raise InvalidInput(f"parameter '{param.name}' must be true or false, not {value!r}")
    if param.kind in (int, float):
        if isinstance(value, bool):
            raise InvalidInput(f"parameter '{param.name}' must be a number, not {value!r}")
        try:
            return param.kind(value)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"parameter '{param.name}' must be a number, not {value!r}"
            ) from None
    if not isinstance(value, str):
        raise InvalidInput(f"parameter '{param.name}' must be a string, not {value!r}")
    if param.choices and value not in param.choices:
        raise InvalidInput(f"parameter '{param.name}' must be one of {', '.join(param.choices)}")
    return value


def _request_values(request: bottle.BaseRequest) -> dict[str, Any]:
    """Merged parameters: query string, then a form or JSON object body."""
    values: dict[str, Any] = dict(request.query.items())
    if request.content_type.split(";")[0].strip() == "application/json":
        raw = request.body.read()
        if raw.strip():
            try:
                document = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise InvalidInput("the request body is not valid JSON") from None
            if not isinstance(document, dict):
                raise InvalidInput("the request body must be a JSON object")
            values.update(document)
    else:
        values.update(request.forms.items())
    return values


def parse_params(params: tuple[Param, ...], values: dict[str, Any]) -> dict[str, Any]:
    known = {param.name for param in params}
    unknown = sorted(set(values) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"unknown parameter '{unknown[0]}' (accepted: {accepted})")
    parsed = {}
    for param in params:
        if param.name in values:
            parsed[param.name] = _convert(param, values[param.name])
        elif param.required:
            raise InvalidInput(f"parameter '{param.name}' is required")
        else:
            parsed[param.name] = param.default
    return parsed


class Encoded(str):
    """An endpoint's body already encoded as JSON (a list of thousands of records kept
    encoded), sent as it is."""


def _json(status: int, body: Any) -> str:
    bottle.response.status = status
    bottle.response.content_type = "application/json"
    return body if isinstance(body, Encoded) else json.dumps(body)


def _handler(ep: Endpoint, ctx: Context, keys: auth.KeyCheck) -> Callable[..., str]:
    def handle(**path_args: str) -> str:
        request = bottle.request
        try:
            if not ep.public:
                keys.check(request.get_header("X-Api-Key"))
            params = parse_params(ep.params, _request_values(request))
            result = ep.func(ctx, **path_args, **params)
        except PvcError as exc:
            return _json(exc.http_status, {"message": exc.message})
        status, body = result if isinstance(result, tuple) else (200, result)
        return _json(status, body)

    return handle


def _error_page(error: bottle.HTTPError) -> str:
    """Bottle's own errors (unknown path, wrong method, a bug) as JSON."""
    if error.status_code >= 500:
        log.error("internal error: %s\n%s", error.exception, error.traceback or "")
        message = "internal error; see the API log"
    elif error.status_code == 404:
        message = f"no such endpoint: {bottle.request.method} {bottle.request.path}"
    elif error.status_code == 405:
        message = f"method {bottle.request.method} is not allowed on {bottle.request.path}"
    else:
        message = str(error.body)
    bottle.response.content_type = "application/json"
    return json.dumps({"message": message})


def make_app(ctx: Context, view: CachedView | None = None) -> bottle.Bottle:
    """The API application for a Zookeeper handler and configuration; it reads from `view`
    (the node daemon's own) or from a mirror of its own.

    Nothing here waits for a mirror to load: the application answers at once, reading from
    Zookeeper itself until the mirror has loaded (see pvc.zk.cache)."""
    from pvc.api import openapi, routes

    routes.load()
    # Lists come from memory kept current by watches, not from thousands of reads per request.
    ctx = Context(view or CachedView(ctx.zk.zk, open_mirror(ctx.zk.zk, wait=0)), ctx.config)
    app = bottle.Bottle()
    app.default_error_handler = _error_page
    keys = auth.KeyCheck.from_config(ctx.config)
    for ep in ENDPOINTS:
        app.route(PREFIX + ep.path, ep.method, _handler(ep, ctx, keys), endpoint=ep)
    document = openapi.document(app, PREFIX)
    app.route(PREFIX + "/openapi.json", "GET", lambda: _json(200, document))
    return app
