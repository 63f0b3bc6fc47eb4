"""The API root: name and version."""

from typing import Any

import pvc
from pvc.api.app import Context, endpoint
from pvc.api.openapi import record


@endpoint(
    "GET",
    "/",
    summary="API name and version",
    tags=("root",),
    public=True,
    returns=record("name", "version"),
)
def get_root(ctx: Context) -> dict[str, Any]:
    return {"name": "pvc", "version": pvc.__version__}
