"""What only the HTTP client has: tokens and roles mapped to exceptions, retries that never write
twice, timeouts, and a log stream that resumes after a dropped connection (issue 14). Against a
real ``memledger serve`` on loopback."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from ledger.client import AuthenticationFailed, MemledgerClient, RetryPolicy, ServiceUnreachable
from ledger.errors import AccessDenied, InvalidRequest, NotFound

FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.02)


class Flaky(httpx.BaseTransport):
    """A real HTTP transport that refuses the first ``refuse`` connections and loses the first
    ``lose`` responses after the server has handled the request."""

    def __init__(self, refuse: int = 0, lose: int = 0):
        self.inner = httpx.HTTPTransport()
        self.refuse, self.lose = refuse, lose
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.refuse > 0:
            self.refuse -= 1
            raise httpx.ConnectError("connection refused", request=request)
        self.sent.append(f"{request.method} {request.url.path}")
        response = self.inner.handle_request(request)
        if self.lose > 0:
            self.lose -= 1
            response.read()
            response.close()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def _client(server, who: str, **kwargs) -> MemledgerClient:
    return MemledgerClient(server.url, token=server.tokens[who], retry=FAST, **kwargs)


def test_tokens_and_roles_map_to_the_embedded_exception_classes(live_server):
    alice, bob, mallory = (_client(live_server, w) for w in ("alice", "bob", "mallory"))
    w = alice.add(cube="notes", text="private note")
    alice.grant("notes", "bob", "reader")
    assert bob.get(w.id).text == "private note"
    with pytest.raises(AccessDenied) as denied:
        bob.update(w.id, "bob was here")
    assert not isinstance(denied.value, AuthenticationFailed) and denied.value.status == 403  # type: ignore[attr-defined]
    with pytest.raises(NotFound):
        mallory.get(w.id)  # no role: the same answer as an unknown id
    with pytest.raises(NotFound):
        mallory.add(cube="notes", text="x")  # taken by alice and invisible to mallory: not created again
    for token in ("mlk_wrong", ""):
        with pytest.raises(AuthenticationFailed):
            MemledgerClient(live_server.url, token=token).whoami()
    with pytest.raises(InvalidRequest) as bad:
        alice.search("x", k=5000)
    assert bad.value.details  # type: ignore[attr-defined]


def test_token_defaults_to_the_environment(live_server, monkeypatch):
    monkeypatch.setenv("MEMLEDGER_TOKEN", live_server.tokens["bob"])
    assert MemledgerClient(live_server.url).whoami()["principal"] == "bob"


def test_a_lost_response_to_an_add_is_retried_under_the_same_idempotency_key(live_server):
    flaky = Flaky()
    client = _client(live_server, "alice", transport=flaky)
    client.create_cube("retry")
    flaky.lose, flaky.sent = 1, []
    w = client.add(cube="retry", text="written once")
    assert flaky.sent.count("POST /v1/memories") == 2  # sent twice, stored once
    page = client.list_memories("retry")
    assert [m.id for m in page.memories] == [w.id]
    assert [v.text for v in client.history(w.id)] == ["written once"]


def test_writes_without_an_idempotency_key_are_not_repeated_once_sent(live_server):
    alice = _client(live_server, "alice")
    w = alice.add(cube="once", text="v1")
    flaky = Flaky(lose=1)
    with pytest.raises(ServiceUnreachable):
        _client(live_server, "alice", transport=flaky).update(w.id, "v2")
    assert flaky.sent == [f"PUT /v1/memories/{w.id}"]
    assert [v.text for v in alice.history(w.id)] == ["v1", "v2"]  # the server did apply it, once
    refused = Flaky(refuse=2)  # never reached the server: safe to send again
    _client(live_server, "alice", transport=refused).update(w.id, "v3")
    assert refused.sent == [f"PUT /v1/memories/{w.id}"]
    assert alice.get(w.id).text == "v3"


def test_a_server_that_does_not_answer_times_out():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections (in the kernel) and never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ServiceUnreachable, match="timed out|Timeout|timeout"):
            MemledgerClient(url, token="t", timeout=0.3, retry=FAST).whoami()
        assert time.monotonic() - start < 10


def test_nothing_listening_is_service_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServiceUnreachable):
        MemledgerClient(f"http://127.0.0.1:{port}", token="t", retry=FAST).head()


class CutStream(httpx.BaseTransport):
    """Drops the first log-stream connection after two events have been delivered."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.starts: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path != "/v1/log/stream":
            return response
        self.starts.append(request.url.params["from"])
        if len(self.starts) > 1:
            return response
        body = response.read()
        cut = body.split(b"\n\n")
        kept = b"\n\n".join(cut[:3]) + b"\n\n"  # the retry: line and two events

        class Dropped(httpx.SyncByteStream):
            def __iter__(self):
                yield kept
                raise httpx.ReadError("connection dropped", request=request)

        return httpx.Response(response.status_code, headers=response.headers, stream=Dropped(), request=request)


def test_the_log_stream_resumes_after_the_last_event_delivered(live_server):
    alice = _client(live_server, "alice")
    for i in range(4):
        alice.add(cube="stream", text=f"event {i}")
    expected = [e["offset"] for e in alice.events(start=0)]
    cut = CutStream()
    got = [e["offset"] for e in _client(live_server, "alice", transport=cut).events(start=0)]
    assert got == expected and len(got) == len(set(got)) >= 5
    assert cut.starts[0] == "0" and int(cut.starts[1]) == got[1] + 1


def test_following_the_log_waits_for_new_events(live_server):
    alice = _client(live_server, "alice")
    w = alice.add(cube="follow", text="first")
    stream = alice.events(start=w.offset + 1, follow=True, limit=1)
    later = _client(live_server, "alice").add(cube="follow", text="second")
    event = next(stream)
    assert event["offset"] == later.offset and event["payload"]["memory_id"] == later.id
