"""Usage:
  pvc api serve [--config FILE]
  pvc api -h | --help

Commands:
  serve   Run the REST API (bottle under waitress) in the foreground, on the address, port,
          keys and TLS settings of the node configuration's `api` section. On a coordinator
          with `api.serve_on_primary`, the node daemon runs it as its child process; run it
          by hand on other hosts, or for testing. SIGHUP reopens the log file.
"""

import signal
import threading
from typing import Any

from pvc import config as pvc_config
from pvc import logs
from pvc.cli.parse import parse


def main(args: list[str], options: Any) -> int:
    parse(__doc__, args, "api")
    from pvc.node import api_process

    api_process.follow_supervisor()  # started by a node daemon: end with it
    config = pvc_config.load(options.config)
    logs.setup(config)
    # logging from a signal handler could deadlock on its lock: reopen on a thread
    signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=logs.reopen).start())
    from pvc.api import server

    return server.serve(config)
