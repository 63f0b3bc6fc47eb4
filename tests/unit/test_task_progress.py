"""Following a task in the CLI (pvc.cli.tasks): the bar, the plain lines, the end states, an
API that does not answer for a while, a task that makes no progress."""

import io

import pytest

from pvc.cli import tasks
from pvc.errors import PvcError, Unavailable


def record(state: str = "running", current: int = 1, total: int = 4, message: str = "vm1",
           updated: float = 1.0, **extra) -> dict:  # fmt: skip
    progress = {"current": current, "total": total, "message": message}
    return {"state": state, "progress": progress, "updated": updated, "error": None, **extra}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeApi:
    """Answers GET /tasks/<task> from a script: a record, or an exception to raise."""

    connection = None
    insecure = False

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked: list[dict] = []

    def get(self, path: str, params: dict | None = None):
        assert path == "/tasks/t1"
        self.asked.append(params or {})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def api(monkeypatch):
    """follow() opens a client with a longer read timeout: give it the fake instead."""
    holder: dict = {}
    monkeypatch.setattr("pvc.cli.client.ApiClient", lambda *a, **k: holder["api"])
    monkeypatch.setattr(tasks, "RETRY_SECONDS", 0.0)

    def make(*answers) -> FakeApi:
        holder["api"] = FakeApi(*answers)
        return holder["api"]

    return make


def test_bar_line_fills_with_the_progress():
    assert tasks.bar_line(record(current=1, total=4), width=8) == "[##------] 1/4 vm1"
    assert tasks.bar_line(record(total=0, current=0), width=4) == "[----] 0/0 vm1"
    assert tasks.bar_line(record("done", 4, 4, "done"), width=4) == "[####] 4/4 done"


def test_step_line():
    assert tasks.step_line(record(current=2, message="vm2: moving away")) == (
        "2/4 vm2: moving away (running)"
    )


@pytest.mark.parametrize(
    "output_format, stream, style",
    [("pretty", Tty(), "bar"), ("pretty", io.StringIO(), "lines"), ("json", Tty(), None)],
)
def test_style_for(output_format, stream, style):
    assert tasks.style_for(output_format, stream) == style


def test_follow_prints_a_line_per_change_and_returns_the_done_record(api):
    fake = api(record(current=1), record(current=1), record(current=2, updated=2.0),
               record("done", 4, 4, "done", updated=3.0))  # fmt: skip
    out = io.StringIO()
    final = tasks.follow(fake, "t1", "lines", out)
    assert final["state"] == "done"
    assert out.getvalue().splitlines() == [
        "1/4 vm1 (running)", "2/4 vm1 (running)", "4/4 done (done)"
    ]  # fmt: skip
    assert fake.asked[0] == {} and fake.asked[1] == {"wait": tasks.POLL_SECONDS, "since": 1.0}
    assert fake.asked[-1]["since"] == 2.0


def test_follow_draws_a_bar_in_place_on_a_terminal(api):
    fake = api(record(current=1), record("done", 4, 4, "done", updated=2.0))
    out = Tty()
    tasks.follow(fake, "t1", "bar", out)
    text = out.getvalue()
    assert text.startswith("\r[") and text.count("\r") == 2 and text.endswith("4/4 done\n")


def test_follow_shows_nothing_for_json(api):
    out = io.StringIO()
    tasks.follow(api(record("done", 4, 4, "done")), "t1", None, out)
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    "end, message",
    [
        (record("failed", error="its runner node2 died while it ran"),
         "task t1 failed: its runner node2 died while it ran"),
        (record("cancelled", message="cancelled"), r"task t1 was cancelled \(cancelled\)"),
    ],
)  # fmt: skip
def test_follow_raises_on_failed_and_cancelled(api, end, message):
    with pytest.raises(PvcError, match=message):
        tasks.follow(api(record(), end | {"updated": 2.0}), "t1", None, io.StringIO())


def test_follow_asks_again_while_the_api_does_not_answer(api):
    fake = api(record(), Unavailable("moving"), Unavailable("moving"),
               record("done", 4, 4, "done", updated=2.0))  # fmt: skip
    assert tasks.follow(fake, "t1", None, io.StringIO())["state"] == "done"
    assert len(fake.asked) == 4


def test_follow_gives_up_on_a_task_without_progress(api):
    with pytest.raises(PvcError, match="task t1 showed no progress for 0.05 s"):
        tasks.follow(api(record()), "t1", None, io.StringIO(), stall=0.05)
