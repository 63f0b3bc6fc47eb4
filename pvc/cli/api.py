"""Usage:
  pvc api serve [--config FILE]
  pvc api -h | --help

Commands:
  serve   Run the REST API (bottle under waitress) in the foreground, on the address, port,
          keys and TLS settings of the node configuration's `api` section. The node daemon
          runs it on the primary coordinator; run it by hand for testing.
"""

from typing import Any

from pvc import config as pvc_config
from pvc import logs
from pvc.cli.parse import parse


def main(args: list[str], options: Any) -> int:
    parse(__doc__, args, "api")
    config = pvc_config.load(options.config)
    logs.setup(config)
    from pvc.api import server

    return server.serve(config)
