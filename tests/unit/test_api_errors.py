"""The API's last line (pvc.api.app.error_page): a bug is a JSON 500 whose traceback goes to
the API log, and bottle's own errors (unknown path, wrong method) are JSON too."""

import json
import logging
from wsgiref.util import setup_testing_defaults

import bottle

from pvc.api.app import error_page


def request(app: bottle.Bottle, method: str, path: str) -> tuple[str, dict, dict]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path}
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], json.loads(body)


def app_with_a_bug() -> bottle.Bottle:
    app = bottle.Bottle()
    app.default_error_handler = error_page

    @app.get("/bug")
    def bug():
        return 1 / 0

    return app


def test_a_bug_is_a_json_500_with_its_traceback_in_the_log(caplog):
    with caplog.at_level(logging.ERROR, logger="pvc.api"):
        status, headers, body = request(app_with_a_bug(), "GET", "/bug")
    assert status.startswith("500") and headers["Content-Type"] == "application/json"
    assert body == {"message": "internal error; see the API log"}
    assert "ZeroDivisionError" in caplog.text and "Traceback" in caplog.text


def test_unknown_paths_and_methods_are_json():
    status, _, body = request(app_with_a_bug(), "GET", "/nothing")
    assert status.startswith("404") and body == {"message": "no such endpoint: GET /nothing"}
    status, _, body = request(app_with_a_bug(), "POST", "/bug")
    assert status.startswith("405") and "method POST is not allowed" in body["message"]
