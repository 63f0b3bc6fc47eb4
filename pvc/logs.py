"""Logging for the daemons (`pvc node run`, `pvc api serve`): to a file or standard error.

A log file is opened with WatchedFileHandler, which reopens it when logrotate moves it away;
`reopen()` (bound to SIGHUP by the node daemon) forces that at once.
"""

import logging
import logging.handlers
import sys

from pvc.config import Config

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup(config: Config) -> None:
    section = config.get("logging")
    if section["file"]:
        try:
            handler: logging.Handler = logging.handlers.WatchedFileHandler(section["file"])
        except OSError as exc:
            from pvc.errors import ConfigError

            raise ConfigError(
                f"logging.file: cannot open {section['file']}: {exc.strerror}"
            ) from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(section["level"].upper())
    # kazoo logs every reconnection attempt at WARNING with a traceback; our handler says it once.
    logging.getLogger("pvc.zk.kazoo").setLevel(logging.ERROR)


def reopen() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.handlers.WatchedFileHandler):
            handler.reopenIfNeeded()
            handler.close()  # the next record opens the file anew
