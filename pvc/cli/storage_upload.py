"""`pvc storage volume upload` and `pvc provisioner ova upload`: sends a file to the API in
pieces, in parallel, then asks the API to finish it (pvc.ops.storage_upload), following the
task with --wait.

A failure while sending cancels the task, which removes what it made."""

import contextlib
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pvc.cli import client, tasks
from pvc.cli.format import check_format, render
from pvc.errors import InvalidInput, PvcError, UsageError
from pvc.ops.sizes import format_size

SENDERS = 8  # pieces in flight: the API writes them to Ceph in parallel


def upload(api: client.ApiClient, volume_path: str, label: str, arguments: dict[str, Any]) -> int:
    """Uploads <file> into the volume at `volume_path` (its API path; `label` is pool/name)."""
    base = volume_path + "/upload"
    params = {"image_format": arguments["--image-format"]}
    return send_file(api, arguments, base, params, base, f"volume '{label}' uploaded")


def send_file(
    api: client.ApiClient,
    arguments: dict[str, Any],
    start: str,
    params: dict[str, Any],
    base: str,
    done: str,
) -> int:
    """Uploads <file>: POST `start` with `params` and its file_size, the pieces PUT to `base`,
    then `base`/finish; with --wait, follows the task and says `done`."""
    output_format = check_format(arguments["--format"])
    path = arguments["<file>"]
    try:
        size = os.path.getsize(path)
        file = open(path, "rb")  # noqa: SIM115 (closed below, after the senders)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    with file:
        if size == 0:
            raise InvalidInput(f"{path} is empty")
        answer = api.post(start, params | {"file_size": size})
        task = answer["task"]
        try:
            send(api, base, task, file, size, int(answer["piece_max"]), output_format)
            finished = api.post(base + "/finish", {"task": task})
        except (PvcError, KeyboardInterrupt):
            cancel(api, task)
            raise
    if not arguments["--wait"]:
        print(render(finished, output_format, lambda document: document["message"]))
        return 0
    record = tasks.follow(api, task, tasks.style_for(output_format, sys.stdout))
    print(render(record, output_format, lambda r: done))
    return 0


def send(
    api: client.ApiClient, base: str, task: str, file: Any, size: int, piece: int, fmt: str
) -> None:
    """Sends the file in pieces of `piece` bytes, SENDERS at a time."""
    lock = threading.Lock()
    sent = [0]
    started = time.monotonic()
    show = fmt == "pretty" and sys.stderr.isatty()

    def one(offset: int) -> None:
        data = os.pread(file.fileno(), min(piece, size - offset), offset)
        api.request("PUT", base, {"task": task, "offset": offset}, data=data)
        with lock:
            sent[0] += len(data)
            if show:
                rate = sent[0] / max(time.monotonic() - started, 1e-3)
                line = f"\rsent {format_size(sent[0])} of {format_size(size)} "
                print(line + f"({format_size(int(rate))}/s)  ", end="", file=sys.stderr)

    with ThreadPoolExecutor(SENDERS) as senders:
        futures = [senders.submit(one, offset) for offset in range(0, size, piece)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            senders.shutdown(wait=True, cancel_futures=True)
            raise
    if show:
        print(file=sys.stderr)


def cancel(api: client.ApiClient, task: str) -> None:
    with contextlib.suppress(PvcError):  # if not, the API's watchdog ends it
        api.request("DELETE", tasks.task_path(task))
