"""pvc.api.http_server.connection_limit: as many connections as the open files allow, at most
limits.CONNECTIONS_MAX."""

import sys

from pvc import limits
from pvc.api.http_server import FILES_PER_CONNECTION, FILES_RESERVED, connection_limit


def test_connection_limit():
    assert connection_limit(sys.maxsize) == limits.CONNECTIONS_MAX
    assert connection_limit(FILES_RESERVED + 20 * FILES_PER_CONNECTION) == 20
    assert connection_limit(FILES_RESERVED) == 1  # never none at all
