"""Streams through `switchboard serve` with other people's client (Python
`websockets`): a 2 MiB binary message in 64 KiB fragments, announced with
`stream:start`, reaches the room's members as fragments, with
`stream:start`/`stream:end` around it; the limit closes with 1009."""

from __future__ import annotations

import json

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from seeddoc import seed_command

CHUNK = 64 * 1024
TOTAL = 2 * 1024 * 1024


def events(ws):
    """JSON messages, user lists skipped."""
    while True:
        message = ws.recv(timeout=10)
        value = json.loads(message)
        if value["event"] != "userlist":
            return value


def test_a_stream_reaches_the_room_in_fragments(start_server):
    # As node websockets' users run it (docs/SEEDS.md, 002).
    server = start_server(*seed_command("002"))
    a, b, c = (ws_connect(server.ws, max_size=None, legacy=True) for _ in range(3))
    for ws in (a, b, c):
        assert events(ws)["event"] == "ready"
    b.send(json.dumps({"event": "join", "room": "r", "ack": 1}))
    assert events(b)["event"] == "ack"
    a.send(json.dumps({"event": "stream:start", "room": "r", "ack": 1}))
    ack = events(a)
    assert ack["data"]["delivered"] == 1
    start = events(b)
    assert start["event"] == "stream:start" and start["data"]["id"] == ack["data"]["id"]

    chunks = [bytes([n % 256]) * CHUNK for n in range(TOTAL // CHUNK)]
    a.send(iter(chunks))  # one message, one frame per chunk
    fragments = list(b.recv_streaming())
    assert len(fragments) > 1, "relayed as fragments"
    assert b"".join(fragments) == b"".join(chunks)
    end = events(b)
    assert end["event"] == "stream:end"
    assert end["data"] == {"id": ack["data"]["id"], "bytes": TOTAL, "complete": True}
    assert events(a)["data"]["delivered"] == 1
    # Not in the room: nothing.
    c.send(json.dumps({"event": "users", "ack": 2}))
    assert events(c)["event"] == "ack"
    for ws in (a, b, c):
        ws.close()


def test_a_stream_past_the_limit_is_closed_with_1009(start_server):
    server = start_server("--max-stream-size", str(CHUNK * 4))
    a = ws_connect(server.ws, max_size=None, legacy=True)
    assert events(a)["event"] == "ready"
    a.send(json.dumps({"event": "stream:start", "broadcast": True, "ack": 1}))
    assert events(a)["event"] == "ack"
    try:
        a.send(iter([b"x" * CHUNK] * 8))
        while True:
            a.recv(timeout=10)
    except ConnectionClosed:
        pass
    assert a.close_code == 1009
