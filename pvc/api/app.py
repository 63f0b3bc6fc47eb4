"""The REST API as a bottle application: endpoint registry, parameters, errors as JSON.

An endpoint is a plain function registered with `@endpoint(...)`, which also records what the
OpenAPI document needs (summary, tags, parameters, statuses, answer schema), so the document is
generated from the routes themselves (pvc.api.openapi). A request goes: route -> `handle`
(the key, then the path arguments and parameters: pvc.api.request_values reads them,
pvc.api.params checks them) -> the endpoint function (one call into pvc.ops) -> JSON. Every
error, including unknown paths and bugs, leaves as `{"message": ...}` with a 4xx/5xx status,
never HTML or a traceback (a bug's traceback goes to the API log).
"""

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bottle

from pvc.api import auth, request_values
from pvc.api.params import Param, Text, name_param, parse_params
from pvc.config import Config
from pvc.errors import PvcError
from pvc.zk.cache import CachedView, open_mirror
from pvc.zk.store import Store

PREFIX = "/api/v1"
PATH_ARG = re.compile(r"<([a-zA-Z_][a-zA-Z0-9_]*)(?::[^>]*)?>")
PATH_ARG_LABELS = {
    "vm": "VM name or UUID",
    "node": "node name",
    "task": "task id",
    "pool": "pool name",
    "volume": "volume name",
    "snapshot": "snapshot name",
    "description": "ACL description",
    "template": "template name",
    "userdata": "userdata name",
    "script": "script name",
    "profile": "profile name",
    "ova": "OVA name",
    "disk_id": "disk id",
}
log = logging.getLogger("pvc.api")


# Path arguments that are not names: an OSD and a network are known by their numbers, a DHCP
# reservation by its MAC address (six hex pairs, ':' or '-' between: one way to match).
NUMBER_PATH_ARGS = {"osd": "OSD id", "vni": "network's VNI"}
NUMBER_DIGITS = 9
NUMBER_PATTERN = rf"^[0-9]{{1,{NUMBER_DIGITS}}}$"
MAC_PATTERN = r"^[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}$"
MAC_LENGTH = 17


def path_param(name: str) -> Param:
    """A path argument: a name by the name rule; a VM by its name or its UUID; an OSD or a
    network by its number; a MAC address."""
    if name == "mac":
        return Param(name, str, "The MAC address, e.g. 52:54:00:12:34:56", required=True,
                     max_length=MAC_LENGTH, pattern=MAC_PATTERN, label="MAC address",
                     rule="six hex pairs, e.g. 52:54:00:12:34:56")  # fmt: skip
    if name in NUMBER_PATH_ARGS:
        label = NUMBER_PATH_ARGS[name]
        return Param(name, str, f"The {label}: its number", required=True,
                     max_length=NUMBER_DIGITS, pattern=NUMBER_PATTERN, label=label,
                     rule="a number")  # fmt: skip
    label = PATH_ARG_LABELS.get(name, name)
    return name_param(name, f"The {label}", label, uuid_form=name == "vm", required=True)


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
    path_params: tuple[Param, ...] = ()
    returns: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    octets: bool = False  # the body is bytes (application/octet-stream), passed as `data`

    @property
    def takes_body(self) -> bool:
        """Parameters may come in a body (else only in the query string, and a body is
        refused unread)."""
        return self.method in ("POST", "PUT") and bool(self.params) and not self.octets


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
    returns: dict[str, Any] | None = None,
    octets: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Registers an endpoint function `func(ctx, **path_args, **params) -> body`.

    With `octets`, the request body is bytes (application/octet-stream, at most
    limits.BODY_MAX), given to the function as `data`; its parameters are in the query string.

    The body is JSON-encoded; return `(status, body)` for a status other than 200.
    `responses` names the statuses of its own the endpoint can answer (those every request
    can get are added: pvc.api.openapi), and `returns` is the JSON schema of its answer
    (default: an object), for the OpenAPI document.
    """

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        path_params = tuple(path_param(name) for name in PATH_ARG.findall(path))
        ENDPOINTS.append(
            Endpoint(
                method,
                path,
                func,
                summary,
                tags,
                params,
                public,
                dict(responses or {}),
                path_params,
                returns or {"type": "object"},
                octets,
            )
        )
        return func

    return register


@dataclass
class Context:
    """What endpoints get: the cluster's state (a CachedView) and the configuration."""

    zk: Store
    config: Config


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
                keys.check(request.environ.get("HTTP_X_API_KEY"))
            request_values.path(request.environ)
            texts = {name: Text(value) for name, value in path_args.items()}
            args = parse_params(ep.path_params, texts)
            params = parse_params(
                ep.params, request_values.values(request.environ, ep.takes_body, ep.octets)
            )
            if ep.octets:
                params["data"] = request_values.octets(request.environ)
            result = ep.func(ctx, **args, **params)
        except PvcError as exc:
            return _json(exc.http_status, {"message": exc.message})
        status, body = result if isinstance(result, tuple) else (200, result)
        return _json(status, body)

    return handle


def error_page(error: bottle.HTTPError) -> str:
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
    app.default_error_handler = error_page
    keys = auth.KeyCheck.from_config(ctx.config)
    for ep in ENDPOINTS:
        app.route(PREFIX + ep.path, ep.method, _handler(ep, ctx, keys), endpoint=ep)
    document = openapi.document(app, PREFIX, PATH_ARG)
    app.route(PREFIX + "/openapi.json", "GET", lambda: _json(200, document))
    return app
