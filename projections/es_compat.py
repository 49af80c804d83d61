"""Elasticsearch client/server compatibility: the REST API version the client asks for is explicit.

The official Python client of major N sends ``Accept`` and ``Content-Type`` as
``application/vnd.elasticsearch+json; compatible-with=N``. A server accepts its own major and the
one before it (REST API compatibility), so a 9.x client talking to an 8.x cluster is refused. The
client here rewrites those two headers to ``compatible-with=<compatible_with>`` (default 8, from
``[views.vector] compatible_with``), which 8.x and 9.x servers both accept, whatever client major
is installed; the transport is a documented constructor argument (``transport_class``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ledger.errors import InvalidRequest

DEFAULT_COMPATIBLE_WITH = 8
SUPPORTED = (7, 8, 9)
_COMPAT = re.compile(r"compatible-with=\d+")
_REWRITTEN = ("accept", "content-type")


def compatible_headers(headers: Mapping[str, Any], major: int) -> dict[str, Any]:
    """``headers`` with every ``compatible-with=N`` of Accept and Content-Type set to ``major``."""
    out = dict(headers)
    for name, value in headers.items():
        if name.lower() in _REWRITTEN and isinstance(value, str):
            out[name] = _COMPAT.sub(f"compatible-with={major}", value)
    return out


def check_compatible_with(value: object) -> int:
    """The configured REST compatibility major, validated."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in SUPPORTED:
        raise InvalidRequest(f"compatible_with must be one of {', '.join(map(str, SUPPORTED))}, not {value!r}")
    return value


def es_client(url: str, compatible_with: int = DEFAULT_COMPATIBLE_WITH, **kwargs: Any) -> Any:
    """An ``Elasticsearch`` client for ``url`` that asks for REST API ``compatible_with``."""
    from elastic_transport import Transport
    from elasticsearch import Elasticsearch

    major = check_compatible_with(compatible_with)

    class CompatibleTransport(Transport):
        def perform_request(self, method: str, target: str, **kw: Any) -> Any:
            headers = kw.get("headers")
            if isinstance(headers, Mapping):
                kw["headers"] = compatible_headers(headers, major)
            return super().perform_request(method, target, **kw)

    return Elasticsearch(url, transport_class=CompatibleTransport, **kwargs)
