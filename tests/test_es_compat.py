"""The Elasticsearch client asks for the REST API the configured cluster speaks (issue 16 defect 6).

A 9.x client sends ``compatible-with=9``, which real 8.x servers refuse. The headers actually sent
are recorded by a local HTTP server here, for the calls the view makes (HEAD, JSON, NDJSON bulk).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ledger.errors import InvalidRequest
from projections.es_compat import compatible_headers, es_client


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = json.dumps({"took": 1, "errors": False, "items": [], "hits": {"hits": []}}).encode()
        self.send_response(200)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _answer

    def log_message(self, *args):  # noqa: D401 - keep the test output quiet
        pass


@pytest.fixture
def recorder():
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("major", [8, 9])
def test_the_headers_sent_ask_for_the_configured_api(recorder, major):
    url, seen = recorder
    es = es_client(url, major, request_timeout=5)
    es.indices.exists(index="x")
    es.search(index="x", query={"match_all": {}})
    es.bulk(operations=[{"index": {"_index": "x", "_id": "1"}}, {"a": 1}])
    es.close()
    assert len(seen) == 3
    for headers in seen:
        assert headers["accept"] == f"application/vnd.elasticsearch+json; compatible-with={major}", headers
    content_types = [h.get("content-type") for h in seen if h.get("content-type")]
    assert content_types == [
        f"application/vnd.elasticsearch+json; compatible-with={major}",
        f"application/vnd.elasticsearch+x-ndjson; compatible-with={major}",
    ]


def test_the_view_defaults_to_elasticsearch_8(recorder):
    from projections.es_views import ElasticsearchView

    url, seen = recorder
    ElasticsearchView(url, source=None, index_prefix="compat")
    assert seen and all("compatible-with=8" in h["accept"] for h in seen)


def test_compatibility_is_validated_and_only_the_version_changes():
    with pytest.raises(InvalidRequest, match="compatible_with"):
        es_client("http://127.0.0.1:1", 10)
    with pytest.raises(InvalidRequest, match="compatible_with"):
        es_client("http://127.0.0.1:1", True)  # type: ignore[arg-type]
    h = {"Accept": "application/vnd.elasticsearch+json; compatible-with=9", "X-Other": "compatible-with=9"}
    assert compatible_headers(h, 8) == {**h, "Accept": "application/vnd.elasticsearch+json; compatible-with=8"}
