"""`pvc node primary|secondary --wait`: when a role move counts as done, and the polling."""

import pytest

from pvc.cli import node
from pvc.errors import PvcError, Unavailable


def status(primary: str | None, **states: str) -> dict:
    """A GET /status document with the nodes' coordinator states."""
    nodes = [{"name": name, "coordinator_state": state} for name, state in states.items()]
    return {"primary_node": primary, "nodes": {"list": nodes}}


@pytest.mark.parametrize(
    "document, primary, done",
    [
        (status("node2", node1="secondary", node2="primary"), True, True),
        (status("node2", node1="relinquish", node2="takeover"), True, False),
        (status("node1", node1="primary", node2="secondary"), True, False),
        (status("node2", node1="secondary", node2="primary"), False, True),
        (status(None, node1="secondary", node2="secondary"), False, False),
        (status("node2", node1="relinquish", node2="primary"), False, False),
        (status("node1", node1="primary", node2="secondary"), False, False),
    ],
)
def test_role_moved(document, primary, done):
    name = "node2" if primary else "node1"
    assert node.role_moved(document, name, primary) is done


class FakeApi:
    """Answers GET /status from a script: a document, or an exception to raise."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def get(self, path: str):
        assert path == "/status"
        self.calls += 1
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_wait_polls_through_an_absent_api(monkeypatch):
    monkeypatch.setattr(node, "POLL_INTERVAL", 0.01)
    api = FakeApi(
        status(None, node1="relinquish", node2="takeover"),
        Unavailable("cannot reach the API"),
        Unavailable("cannot reach the API"),
        status("node2", node1="secondary", node2="primary"),
    )
    took = node.wait_for_role(api, "node2", primary=True, timeout=5)
    assert api.calls == 4 and 0 <= took < 5


def test_wait_gives_up_after_the_timeout(monkeypatch):
    monkeypatch.setattr(node, "POLL_INTERVAL", 0.01)
    api = FakeApi(status("node1", node1="primary", node2="secondary"))
    with pytest.raises(PvcError, match="node1 did not hand the primary role .* within 0.2 s"):
        node.wait_for_role(api, "node1", primary=False, timeout=0.2)
    assert api.calls > 1


def test_other_api_errors_stop_the_wait():
    api = FakeApi(PvcError("the API key is not valid"))
    with pytest.raises(PvcError, match="API key"):
        node.wait_for_role(api, "node2", primary=True)
    assert api.calls == 1
