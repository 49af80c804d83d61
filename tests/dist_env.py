"""Endpoints of the distributed-tier servers for integration tests (see infra/up.sh).

Each helper returns the endpoint from its environment variable after checking that something
answers there; otherwise it skips the calling test with a message that says what to run, or, with
``MEMLEDGER_REQUIRE_SERVERS=1`` (what CI sets), fails it: a server that could not start must not
let the suite pass with its integration tests silently skipped.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import NoReturn
from urllib.parse import urlparse

import pytest

ENDPOINTS = {
    "postgres": "MEMLEDGER_TEST_PG_DSN",
    "kafka": "MEMLEDGER_TEST_KAFKA",
    "neo4j": "MEMLEDGER_TEST_NEO4J",
    "elasticsearch": "MEMLEDGER_TEST_ES",
}
HINT = "start the servers with infra/up.sh and `source infra/run/env.sh`"


def _host_port(server: str, value: str) -> tuple[str, int]:
    if server == "kafka":
        host, _, port = value.split(",")[0].rpartition(":")
        return host, int(port)
    u = urlparse(value)
    default = {"postgres": 5432, "neo4j": 7687, "elasticsearch": 9200}[server]
    return u.hostname or "127.0.0.1", u.port or default


def reachable(server: str) -> tuple[str | None, str]:
    """(endpoint or None, reason) for one server."""
    var = ENDPOINTS[server]
    value = os.environ.get(var)
    if not value:
        return None, f"{var} is not set ({HINT})"
    host, port = _host_port(server, value)
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        return None, f"{server} at {host}:{port} ({var}) does not answer: {exc}"
    return value, "ok"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test, or fail it when ``MEMLEDGER_REQUIRE_SERVERS=1`` (CI): a server is missing."""
    if os.environ.get("MEMLEDGER_REQUIRE_SERVERS") == "1":
        pytest.fail(f"required (MEMLEDGER_REQUIRE_SERVERS=1) but not available: {reason}")
    pytest.skip(reason)


def endpoint(server: str) -> str:
    """The endpoint of ``server``, or skip the test with a clear reason."""
    value, reason = reachable(server)
    if value is None:
        skip_or_fail(f"{server} not available: {reason}")
    return value


def unique_name(prefix: str = "t") -> str:
    """A fresh lower-case identifier for a per-test ledger, schema, topic or index."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"
