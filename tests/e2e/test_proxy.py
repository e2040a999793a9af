"""The connect proxy and the event proxy (docs/PROXY.md), against a real
backend: a `ThreadingHTTPServer` on a free loopback port, in a thread of
the test process, whose answers each test sets.

- connect proxy: a `result` admits with its name, meta and rooms (shown in
  `ready`, user lists and `from_meta`); an `error` refuses with its status
  (401, 403) and message; a backend that is down or slow refuses with 503
  within the timeout;
- event proxy: an event nothing handles comes back as the ack's data and
  each kind of `emit` (to, room, broadcast, reply) is delivered; `connect`
  and `disconnect` announce joins and leaves to a room; a backend that is
  down, slow or answers garbage gives the documented error code and the
  connection stays usable; a full per-connection queue gives `proxy_busy`;
  1,000 events from 50 connections are all answered, in order per
  connection.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from httpcalls import http
from hubclient import Client
from serverproc import ROOT, free_port, wait_for

pytestmark = pytest.mark.timeout(60)

Answer = Callable[[dict], Any]


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # An answer written after the server gave up on it (the timeout
        # tests) fails with a broken pipe: expected, not worth a traceback.
        pass


class Backend:
    """A proxy backend: `answers[path]` turns a request body into the reply
    (a dict sent as JSON with 200, or `(status, bytes)` sent as they are);
    every request is kept in `requests` as `(path, body)`."""

    def __init__(self):
        self.answers: dict[str, Answer] = {}
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the server's pool expects

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with backend.lock:
                    backend.requests.append((self.path, body))
                answer = backend.answers[self.path](body)
                status, payload = (
                    answer if isinstance(answer, tuple) else (200, json.dumps(answer).encode())
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def seen(self, path: str, event: str | None = None) -> list[dict]:
        with self.lock:
            return [
                body
                for p, body in self.requests
                if p == path and (event is None or body.get("event") == event)
            ]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend():
    backend = Backend()
    yield backend
    backend.close()


def refused(url: str, **options) -> tuple[int, str]:
    """The status and body of a refused upgrade (fails if it succeeds)."""
    with pytest.raises(InvalidStatus) as refusal:
        ws_connect(url, proxy=None, open_timeout=10, **options).close()
    response = refusal.value.response
    return response.status_code, response.body.decode(errors="replace").rstrip("\n")


def result(data=None, emit=()):
    return {"result": {"data": data, "emit": list(emit)}}


# ---- connect proxy ------------------------------------------------------------------------


def test_connect_proxy_admits_with_name_meta_and_rooms(start_server, connect, backend):
    def decide(request):
        user = request["query"]["user"]
        return {"result": {"name": user, "meta": {"role": "admin", "level": 3}, "rooms": ["lobby"]}}

    backend.answers["/connect"] = decide
    server = start_server("--connect-proxy", backend.url("/connect"))
    a = connect(
        f"{server.ws}?user=ann&x=1",
        headers={"Cookie": "sid=42", "Authorization": "Bearer t0k"},
        origin="http://app.example",
    )
    assert a.name == "ann"
    asked = backend.seen("/connect")[0]
    assert asked["path"] == "/ws"
    assert asked["query"] == {"user": "ann", "x": "1"}
    assert asked["headers"] == {
        "cookie": "sid=42",
        "authorization": "Bearer t0k",
        "origin": "http://app.example",
    }
    assert asked["remote"].startswith("127.0.0.1:")
    assert asked["protocols"] == []

    b = connect(f"{server.ws}?user=bob", msgpack=True)
    assert backend.seen("/connect")[1]["protocols"] == ["switchboard.msgpack"]
    # Joined before `ready`, which lists the room; the user list shows meta.
    users = a.request({"event": "users", "room": "lobby"})["data"]
    assert users == [
        {"id": u.id, "name": u.name, "meta": {"role": "admin", "level": 3}}
        for u in sorted([a, b], key=lambda c: c.id)
    ]
    b.send({"event": "chat", "room": "lobby", "data": "hi", "echo": False})
    message = a.next("chat")
    assert message["from_meta"] == {"role": "admin", "level": 3}
    assert message["from_name"] == "bob"


def test_ready_lists_the_rooms_the_proxy_joined(start_server, backend):
    backend.answers["/connect"] = lambda _: {"result": {"rooms": ["a", "b"]}}
    server = start_server("--connect-proxy", backend.url("/connect"))
    with ws_connect(server.ws, proxy=None, open_timeout=5) as ws:
        ready = json.loads(ws.recv(timeout=5))
    assert ready["event"] == "ready"
    assert ready["data"]["rooms"] == ["a", "b"]


def test_connect_proxy_refuses_with_401_and_403_and_the_message(start_server, backend):
    def decide(request):
        token = request["query"].get("token")
        if token is None:
            return {"error": {"status": 401, "message": "log in first"}}
        return {"error": {"status": 403, "message": f"{token} may not enter"}}

    backend.answers["/connect"] = decide
    server = start_server("--connect-proxy", backend.url("/connect"))
    assert refused(server.ws) == (401, "log in first")
    assert refused(f"{server.ws}?token=eve") == (403, "eve may not enter")


def test_connect_proxy_down_or_slow_refuses_with_503(start_server, backend):
    down = start_server("--connect-proxy", f"http://127.0.0.1:{free_port()}/connect")
    status, body = refused(down.ws)
    assert (status, body) == (503, "connect proxy unavailable")

    def slow(_):
        time.sleep(3)
        return {"result": {}}

    backend.answers["/connect"] = slow
    server = start_server(
        "--connect-proxy", backend.url("/connect"), "--connect-proxy-timeout", "0.5"
    )
    started = time.monotonic()
    assert refused(server.ws) == (503, "connect proxy timed out")
    assert time.monotonic() - started < 2.5

    backend.answers["/connect"] = lambda _: (200, b"<html>not json</html>")
    assert refused(server.ws) == (503, "connect proxy answered badly")
    backend.answers["/connect"] = lambda _: (500, b'{"result":{}}')
    assert refused(server.ws) == (503, "connect proxy answered badly")


# ---- event proxy --------------------------------------------------------------------------


def test_event_round_trip_with_ack_data_and_every_kind_of_emit(start_server, connect, backend):
    def answer(request):
        if request["event"] != "updateUser":
            return result()
        me = request["connection"]
        user = request["data"]["user"]
        return result(
            data={"saved": user},
            emit=[
                {"event": "updated", "reply": True, "data": {"user": user}},
                {"event": "roomNews", "room": "lobby", "data": user},
                {"event": "everyone", "broadcast": True, "data": user},
                {"event": "direct", "to": request["data"]["tell"], "data": me["id"]},
                {"event": "skipped"},  # no target: skipped, not fatal
            ],
        )

    backend.answers["/event"] = answer
    server = start_server("--event-proxy", backend.url("/event"))
    a, b, c = (connect(server.ws) for _ in range(3))
    b.join("lobby")
    reply = a.request({"event": "updateUser", "data": {"user": "ann", "tell": c.id}}, ack=7)
    assert reply == {"event": "ack", "ack": 7, "data": {"saved": "ann"}}
    # What the backend emitted came before the ack, in the reply's order.
    assert [m["event"] for m in a.drain()] == ["updated", "everyone"]
    assert [(m["event"], m.get("room"), m["data"]) for m in b.silent()] == [
        ("roomNews", "lobby", "ann"),
        ("everyone", None, "ann"),
    ]
    got = {m["event"]: m for m in c.silent()}
    assert got["direct"]["data"] == a.id and got["direct"]["to"] == c.id
    assert got["everyone"]["broadcast"] is True
    sent = backend.seen("/event", "updateUser")[0]
    assert sent["connection"] == {"id": a.id, "name": None, "meta": {}, "rooms": []}
    assert sent["data"] == {"user": "ann", "tell": c.id}


def test_an_emit_may_ask_for_an_ack_and_the_answer_comes_back(start_server, connect, backend):
    def answer(request):
        if request["event"] == "quiz":
            tell = request["data"]
            return result(
                emit=[
                    {"event": "question", "reply": True, "data": "2+2?", "ack": 11},
                    {"event": "question", "to": tell, "data": "3+3?", "ack": 12},
                    {"event": "question", "room": "lobby", "data": "?", "ack": 13},
                ]
            )
        return result()

    backend.answers["/event"] = answer
    server = start_server("--event-proxy", backend.url("/event"))
    a, b = connect(server.ws), connect(server.ws)
    b.join("lobby")
    a.send({"event": "quiz", "data": b.id})
    assert a.next("question") == {"event": "question", "data": "2+2?", "ask": 11}
    assert b.next("question") == {"event": "question", "data": "3+3?", "ask": 12}
    assert b.silent() == [], "a room is not asked"
    a.send({"event": "ack", "ack": 11, "data": 4})
    b.send({"event": "ack", "ack": 12, "data": [6, "six"]})
    wait_for(lambda: len(backend.seen("/event", "ack")) == 2, 5, "both answers")
    answers = {body["connection"]["id"]: body["data"] for body in backend.seen("/event", "ack")}
    assert answers == {a.id: {"id": 11, "data": 4}, b.id: {"id": 12, "data": [6, "six"]}}
    assert a.silent() == [], "an answer gets no reply"
    a.send({"event": "ack", "ack": "x"})
    assert a.next("error")["data"]["code"] == "invalid_ack"


def test_backend_error_becomes_the_error_event_or_the_acks_error(start_server, connect, backend):
    backend.answers["/event"] = lambda request: (
        result()
        if request["event"] in ("connect", "disconnect")
        else {"error": {"code": "not_allowed", "message": "no saving today"}}
    )
    server = start_server("--event-proxy", backend.url("/event"))
    a = connect(server.ws)
    a.send({"event": "save", "data": 1})
    assert a.next() == {
        "event": "error",
        "data": {"code": "not_allowed", "message": "no saving today", "event": "save"},
    }
    reply = a.request({"event": "save"}, ack="s")
    assert reply["error"] == {"code": "not_allowed", "message": "no saving today", "event": "save"}


def test_connect_and_disconnect_announce_joins_and_leaves(start_server, connect, backend):
    """The Socket.IO chat exercise: everyone is put in `chat` by the connect
    proxy; the event proxy tells the room who came and who left."""
    backend.answers["/connect"] = lambda request: {
        "result": {"name": request["query"]["name"], "rooms": ["chat"]}
    }

    def events(request):
        who = request["connection"]
        if request["event"] == "connect":
            return result(emit=[{"event": "joined", "room": "chat", "data": who["name"]}])
        if request["event"] == "disconnect":
            return result(
                emit=[
                    {
                        "event": "left",
                        "room": "chat",
                        "data": {"name": who["name"], "rooms": who["rooms"], **request["data"]},
                    }
                ]
            )
        return result()

    backend.answers["/event"] = events
    server = start_server(
        "--connect-proxy", backend.url("/connect"), "--event-proxy", backend.url("/event")
    )
    ann = connect(f"{server.ws}?name=ann")
    assert ann.next("joined")["data"] == "ann"
    bob = connect(f"{server.ws}?name=bob")
    assert ann.next("joined")["data"] == "bob"
    assert bob.next("joined")["data"] == "bob"
    bob.ws.close(code=1000, reason="bye")
    left = ann.next("left")
    assert left["data"] == {"name": "bob", "rooms": ["chat"], "code": 1000, "reason": "bye"}
    assert left["room"] == "chat"


def test_proxy_down_slow_or_garbage_is_an_error_and_the_connection_stays(
    start_server, connect, backend
):
    def answer(request):
        kind = request["data"] if request["event"] == "ask" else None
        if kind == "slow":
            time.sleep(2)
        if kind == "garbage":
            return (200, b"this is not JSON")
        if kind == "status":
            return (502, b'{"result":{}}')
        if kind == "shape":
            return {"answer": 42}
        return result(data="fine")

    backend.answers["/event"] = answer
    server = start_server(
        "--event-proxy", backend.url("/event"), "--event-proxy-timeout", "0.5"
    )
    a = connect(server.ws)
    expected = {
        "slow": "proxy_timeout",
        "garbage": "proxy_bad_response",
        "status": "proxy_bad_response",
        "shape": "proxy_bad_response",
    }
    for kind, code in expected.items():
        started = time.monotonic()
        a.send({"event": "ask", "data": kind})
        error = a.next("error", timeout=3)
        assert error["data"]["code"] == code, error
        assert error["data"]["event"] == "ask"
        assert time.monotonic() - started < 1.5
        # Still usable: the hub answers, and so does the proxy.
        assert a.request({"event": "join", "room": "r"}, ack=kind)["data"]["room"] == "r"
        assert a.request({"event": "ask", "data": "ok"}, ack=f"{kind}-ok")["data"] == "fine"

    down = start_server("--event-proxy", f"http://127.0.0.1:{free_port()}/event")
    b = connect(down.ws)
    # Its `connect` could not be told: the client hears of it.
    assert b.next("error")["data"]["event"] == "connect"
    reply = b.request({"event": "ask"}, ack=1)
    assert reply["error"]["code"] == "proxy_unavailable"
    b.send({"event": "ask"})
    assert b.next("error")["data"]["code"] == "proxy_unavailable"
    b.join("still-here")


def test_a_full_queue_is_proxy_busy_at_once(start_server, connect, backend):
    gate = threading.Event()

    def answer(request):
        if request["event"] == "wait":
            gate.wait(5)
        return result(data=request["data"])

    backend.answers["/event"] = answer
    server = start_server(
        "--event-proxy", backend.url("/event"), "--event-proxy-max-queued", "2"
    )
    a = connect(server.ws)
    for n in range(4):
        a.send({"event": "wait", "data": n, "ack": n})
    busy = [a.next(timeout=1) for _ in range(2)]
    assert [(m["ack"], m["error"]["code"]) for m in busy] == [(2, "proxy_busy"), (3, "proxy_busy")]
    gate.set()
    assert [a.next()["data"] for _ in range(2)] == [0, 1]
    metrics = http("GET", f"{server.http}/metrics").text
    assert 'switchboard_proxy_requests_total{kind="event",outcome="busy"} 2' in metrics


def test_listed_events_go_to_the_proxy_even_when_addressed(start_server, connect, backend):
    def answer(request):
        if request["event"] != "chat":
            return result()
        text = request["data"].upper()
        return result(data="checked", emit=[{"event": "chat", "room": request["room"], "data": text}])

    backend.answers["/event"] = answer
    server = start_server(
        "--event-proxy", backend.url("/event"), "--event-proxy-events", "chat,other"
    )
    a, b = connect(server.ws), connect(server.ws)
    b.join("lobby")
    assert a.request({"event": "chat", "room": "lobby", "data": "hello"})["data"] == "checked"
    assert b.next("chat")["data"] == "HELLO"
    assert backend.seen("/event", "chat")[0]["room"] == "lobby"
    # Not listed: relayed as ever, without the proxy.
    a.send({"event": "plain", "room": "lobby", "data": "x"})
    assert b.next("plain")["data"] == "x"
    assert not backend.seen("/event", "plain")


def test_errors_go_to_the_proxy_when_listed(start_server, connect, backend):
    backend.answers["/event"] = lambda request: result()
    server = start_server("--event-proxy", backend.url("/event"), "--event-proxy-events", "error")
    a = connect(server.ws)
    a.send("not json")
    assert a.next("error")["data"]["code"] == "invalid_json"
    a.ws.close(code=1000, reason="done")
    deadline = time.monotonic() + 5
    while not backend.seen("/event", "disconnect") and time.monotonic() < deadline:
        time.sleep(0.02)
    errors = backend.seen("/event", "error")
    assert len(errors) == 1 and errors[0]["data"]["code"] == "invalid_json"
    assert "close_code" not in errors[0]["data"]
    assert backend.seen("/event", "disconnect")[0]["data"] == {"code": 1000, "reason": "done"}


def test_streams_go_to_the_proxy_when_listed(start_server, backend):
    backend.answers["/event"] = lambda request: result()
    server = start_server(
        "--event-proxy", backend.url("/event"), "--event-proxy-events", "stream:start,stream:end"
    )
    member = Client(server.ws)
    member.send({"event": "join", "room": "r", "ack": 1})
    member.next("ack")
    with ws_connect(server.ws, max_size=None) as sender:
        json.loads(sender.recv(timeout=5))  # ready
        sender.send(json.dumps({"event": "stream:start", "room": "r", "ack": 1}))
        stream_id = json.loads(sender.recv(timeout=5))["data"]["id"]
        sender.send(iter([b"a" * 1000, b"b" * 1000]))
        deadline = time.monotonic() + 5
        while not backend.seen("/event", "stream:end") and time.monotonic() < deadline:
            time.sleep(0.02)
    member.close()
    [start] = backend.seen("/event", "stream:start")
    assert start["data"] == {"id": stream_id, "bytes": 0, "members": 1, "room": "r"}
    [end] = backend.seen("/event", "stream:end")
    assert end["data"] == {
        "id": stream_id, "bytes": 2000, "members": 1, "room": "r", "complete": True,
    }


def test_a_thousand_events_from_fifty_connections_in_order(start_server, backend):
    backend.answers["/event"] = lambda request: result(data=request["data"])
    server = start_server("--event-proxy", backend.url("/event"))
    clients = [Client(server.ws) for _ in range(50)]
    try:
        for client in clients:
            for n in range(20):
                client.send({"event": "count", "data": n, "ack": n})
        for client in clients:
            acks = [client.next("ack", timeout=20) for _ in range(20)]
            assert [m["ack"] for m in acks] == list(range(20))
            assert [m["data"] for m in acks] == list(range(20))
    finally:
        for client in clients:
            client.close()
    assert len(backend.seen("/event", "count")) == 1000
    metrics = http("GET", f"{server.http}/metrics").text
    ok = re.search(r'switchboard_proxy_requests_total\{kind="event",outcome="ok"\} (\d+)', metrics)
    assert ok and int(ok.group(1)) >= 1050, metrics  # the events and the connects
    assert 'switchboard_proxy_request_seconds_count{kind="event"}' in metrics


def test_the_readme_backend_implements_update_user(start_server, connect):
    """examples/proxy/backend.py, as the README shows it, in its own process."""
    script = ROOT / "examples" / "proxy" / "backend.py"
    assert script.read_text() in (ROOT / "README.md").read_text(), "README and example differ"
    port = free_port()
    process = subprocess.Popen([sys.executable, str(script), str(port)])
    try:
        wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, what="backend")
        server = start_server("--event-proxy", f"http://127.0.0.1:{port}/")
        alice, bob = connect(server.ws), connect(server.ws)
        reply = alice.request({"event": "updateUser", "data": {"user": "alice"}}, ack=1)
        assert reply["data"] == {"users": 1}
        assert bob.next("users")["data"] == [{"user": "alice"}]
        bob.request({"event": "updateUser", "data": {"user": "bob"}}, ack=2)
        assert alice.next("users")["data"] == [{"user": "alice"}]
        assert alice.next("users")["data"] == [{"user": "alice"}, {"user": "bob"}]
        bob.close()
        assert alice.next("users")["data"] == [{"user": "alice"}]
    finally:
        process.kill()
        process.wait(5)
