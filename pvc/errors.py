"""The error hierarchy and, in one table, what each error means to the API and the CLI.

Every error a user can cause or meet carries a message they can act on. The API turns an
error into `{"message": ...}` with `http_status`; the CLI prints the message on one line and
exits with `exit_code` (1: the operation failed, 2: the command was used wrongly).
"""


class PvcError(Exception):
    """Base class: an operation failed for a reason the user can read."""

    http_status = 500
    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(PvcError):
    """The request or the arguments are malformed or out of range."""

    http_status = 400


class Unauthorized(PvcError):
    """The API key is missing or wrong."""

    http_status = 401


class NotFound(PvcError):
    """The named object does not exist."""

    http_status = 404


class Conflict(PvcError):
    """The request contradicts the current state (already exists, already initialised...)."""

    http_status = 409


class ConcurrentChange(Conflict):
    """Another writer changed the state between our read and our write; nothing was written."""


class LockTimeout(PvcError):
    """A lock could not be taken within its timeout."""

    http_status = 409


class Unavailable(PvcError):
    """A backing service (Zookeeper, the API, ...) cannot be reached."""

    http_status = 503


class AccessDenied(PvcError):
    """Zookeeper refuses this session: its zookeeper.secret is missing or not the cluster's.

    Not Unavailable: trying again cannot help, the configuration must change."""

    http_status = 503
    exit_code = 2


class TooLarge(PvcError):
    """A value or a write is larger than pvc accepts (pvc.limits)."""

    http_status = 413


class ConfigError(PvcError):
    """The configuration file is missing, malformed or has a wrong or unknown key."""

    exit_code = 2


class UsageError(PvcError):
    """The command line is malformed."""

    exit_code = 2
