"""The controller shape (pvc.node.controller): one key on one worker at a time, coalescing,
steps asking to run again later, retries after a failing step, resync, stop and restart."""

import threading
import time

from pvc.node.controller import Controller


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_key_is_never_held_by_two_workers_and_runs_again_after_a_change():
    inside: dict[str, int] = {}
    overlaps = []
    calls = []
    release = threading.Event()
    lock = threading.Lock()

    def step(key: str) -> None:
        with lock:
            inside[key] = inside.get(key, 0) + 1
            if inside[key] > 1:
                overlaps.append(key)
            calls.append(key)
        if len(calls) == 1:
            release.wait(2)
        with lock:
            inside[key] -= 1

    controller = Controller("t", step, workers=4)
    controller.start()
    try:
        controller.enqueue("a")
        wait_until(lambda: calls == ["a"])
        for _ in range(10):
            controller.enqueue("a")  # while its first step runs: coalesced into one more
        time.sleep(0.1)
        assert calls == ["a"]
        release.set()
        wait_until(lambda: len(calls) == 2)
        time.sleep(0.1)
        assert calls == ["a", "a"]
        assert overlaps == []
    finally:
        controller.stop()


def test_other_keys_go_on_while_one_step_is_slow():
    done = []
    slow = threading.Event()

    def step(key: str) -> None:
        if key == "slow":
            slow.wait(5)
        done.append(key)

    controller = Controller("t", step, workers=2)
    controller.start()
    try:
        controller.enqueue("slow")
        for key in ("b", "c", "d"):
            controller.enqueue(key)
        wait_until(lambda: {"b", "c", "d"} <= set(done))
        assert "slow" not in done
    finally:
        slow.set()
        controller.stop()


def test_a_step_asks_to_be_called_again_instead_of_sleeping():
    times: list[float] = []

    def step(key: str) -> float | None:
        times.append(time.monotonic())
        return 0.2 if len(times) < 3 else None

    controller = Controller("t", step, workers=1)
    controller.start()
    try:
        controller.enqueue("k")
        wait_until(lambda: len(times) == 3)
        time.sleep(0.3)
        assert len(times) == 3
        assert times[1] - times[0] >= 0.19 and times[2] - times[1] >= 0.19
    finally:
        controller.stop()


def test_an_earlier_request_wins_over_a_later_one():
    calls = []
    controller = Controller("t", lambda key: calls.append(key), workers=1)
    controller.start()
    try:
        controller.enqueue("k", delay=30)
        controller.enqueue("k")
        wait_until(lambda: calls == ["k"])
        assert controller.pending() == 0  # the later request was merged into the earlier one
    finally:
        controller.stop()


def test_a_failing_step_is_retried_with_backoff():
    calls = []

    def step(key: str) -> None:
        calls.append(time.monotonic())
        if len(calls) < 2:
            raise RuntimeError("boom")

    controller = Controller("t", step, workers=1)
    controller.start()
    try:
        controller.enqueue("k")
        wait_until(lambda: len(calls) == 2)
        assert calls[1] - calls[0] >= 0.9
    finally:
        controller.stop()


def test_resync_names_keys_at_start_and_every_interval_and_restart_works():
    calls = []
    controller = Controller(
        "t", calls.append, workers=1, resync=lambda: ["x", "y"], resync_interval=0.2
    )
    controller.start()
    wait_until(lambda: calls.count("x") >= 2 and calls.count("y") >= 2)
    controller.stop()
    assert not controller.running()
    stopped_at = len(calls)
    time.sleep(0.3)
    assert len(calls) == stopped_at
    controller.enqueue("z")  # ignored while stopped
    controller.start()
    try:
        wait_until(lambda: len(calls) > stopped_at)
        assert "z" not in calls
    finally:
        controller.stop()


def test_a_step_outliving_stop_ends_its_worker_after_a_restart():
    """stop() gave up waiting for a slow step; after a new start(), that step's old worker
    finishes it and ends instead of taking keys beside the new workers."""
    release = threading.Event()
    slow_worker: list[threading.Thread] = []
    ran_by: list[threading.Thread] = []

    def step(key: str) -> None:
        if key == "slow":
            slow_worker.append(threading.current_thread())
            release.wait(5)
        else:
            ran_by.append(threading.current_thread())

    controller = Controller("t", step, workers=1)
    controller.start()
    try:
        controller.enqueue("slow")
        wait_until(lambda: slow_worker)
        controller.stop(timeout=0.1)
        controller.start()
        release.set()
        slow_worker[0].join(2)
        assert not slow_worker[0].is_alive()
        controller.enqueue_all(["a", "b", "c"])
        wait_until(lambda: len(ran_by) == 3)
        assert slow_worker[0] not in ran_by
    finally:
        release.set()
        controller.stop()
