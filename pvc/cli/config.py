"""Usage:
  pvc config sample
  pvc config check
  pvc config -h | --help

Commands:
  sample   Print a fully commented sample node configuration.
  check    Validate the node configuration (--config or $PVC_CONFIG, else /etc/pvc/pvc.conf):
           every key, that the files it names (TLS certificate and key, the log file's
           folder) are there, and that it has the cluster's zookeeper.secret (the node daemon
           and the API need it). Exit 2 with one line naming the key if not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pvc import config as node_config
from pvc.cli.parse import parse
from pvc.errors import ConfigError

if TYPE_CHECKING:
    from pvc.__main__ import Globals


def main(args: list[str], options: Globals) -> int:
    arguments = parse(__doc__, args, "config")
    if arguments["sample"]:
        print(node_config.sample(), end="")
    else:
        config = node_config.load(options.config)
        node_config.check_files(config)
        if not config.get("zookeeper.secret"):
            raise ConfigError(
                "config: 'zookeeper.secret' is not set: pvc node run and pvc api serve refuse "
                "to start without the cluster's secret ('pvc config sample' generates one)"
            )
        print(f"config OK: {config.path}")
    return 0
