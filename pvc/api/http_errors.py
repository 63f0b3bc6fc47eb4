"""Waitress's own answers (a malformed request, headers or a body over the limit, an error
escaping the application, a body refused for want of an API key) as the API's other errors
are: JSON `{"message": ...}` with a status, never waitress's plain text.

Each of these answers closes the connection, as waitress's do: what follows on it is not
trusted to be a request.
"""

import json

from waitress.task import ErrorTask
from waitress.utilities import (
    BadRequest,
    Error,
    InternalServerError,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
)

from pvc import limits


class KeyRequired(BadRequest):
    """A request with a body but without a valid API key, refused before its body is read."""

    code = 401
    reason = "Unauthorized"


def error_message(error: Error) -> str:
    """One line a user can act on, for each of waitress's errors."""
    if isinstance(error, RequestEntityTooLarge):
        return f"the request body is larger than {limits.BODY_MAX} bytes"
    if isinstance(error, RequestHeaderFieldsTooLarge):
        return f"the request headers are larger than {limits.HEADER_MAX} bytes"
    if isinstance(error, KeyRequired):
        return limits.one_line(error.body)
    if isinstance(error, InternalServerError):
        return "internal error; see the API log"
    return limits.one_line(f"{error.reason.lower()}: {error.body}")


class JsonErrorTask(ErrorTask):
    """waitress's ErrorTask with a JSON body (channel.error_task_class)."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"message": error_message(error)}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
