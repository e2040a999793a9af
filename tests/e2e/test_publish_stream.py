"""`POST /api/publish?room=R` with a body of any length, chunked or not:
relayed to the room's members as one streamed binary message while it
arrives (`stream:start`, the fragments, `stream:end`), never held whole.
Bad chunking, a missing or doubled target and a body past
`--max-stream-size` are refused with a clear status, and the members of a
cut stream hear that it was cut."""

from __future__ import annotations

import http.client
import json
import socket

from websockets.sync.client import connect as ws_connect

CHUNK = 64 * 1024
TOTAL = 1024 * 1024


def events(ws):
    """The next JSON message that is not a user list."""
    while True:
        value = json.loads(ws.recv(timeout=10))
        if value["event"] != "userlist":
            return value


def member(server, room="r"):
    ws = ws_connect(server.ws, max_size=None, legacy=True)
    assert events(ws)["event"] == "ready"
    ws.send(json.dumps({"event": "join", "room": room, "ack": 1}))
    assert events(ws)["event"] == "ack"
    return ws


def post_chunked(server, query: str, chunks, headers=None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(
        "POST", f"/api/publish?{query}", body=iter(chunks), headers=headers or {},
        encode_chunked=True,
    )
    response = connection.getresponse()
    body = json.loads(response.read() or b"null")
    connection.close()
    return response.status, body


def test_a_chunked_publish_reaches_the_room_as_fragments(start_server):
    server = start_server()
    ann = member(server)
    chunks = [bytes([n]) * CHUNK for n in range(TOTAL // CHUNK)]
    status, answer = post_chunked(server, "room=r", chunks)
    assert status == 200, answer
    assert answer["bytes"] == TOTAL and answer["delivered"] == 1, answer

    start = events(ann)
    assert start["event"] == "stream:start" and start["room"] == "r", start
    assert start["data"] == {"id": answer["id"], "kind": "binary"}
    fragments = list(ann.recv_streaming())
    assert len(fragments) > 1, "relayed as fragments"
    assert b"".join(fragments) == b"".join(chunks)
    end = events(ann)
    assert end["event"] == "stream:end"
    assert end["data"] == {"id": answer["id"], "bytes": TOTAL, "complete": True}
    ann.close()


def test_a_publish_with_content_length_streams_too_and_needs_the_key(start_server):
    server = start_server("--api-key", "secret")
    ann = member(server, "lobby")
    body = b"x" * 100_000
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/api/publish?broadcast=true", body=body)
    refused = connection.getresponse()
    assert refused.status == 401, refused.read()
    connection.close()

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/api/publish?broadcast=true", body=body,
                       headers={"Authorization": "Bearer secret"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 200 and answer["bytes"] == len(body), answer
    assert events(ann)["event"] == "stream:start"
    assert b"".join(ann.recv_streaming()) == body
    assert events(ann)["data"]["complete"] is True
    ann.close()


def test_bad_targets_are_400(start_server):
    server = start_server()
    for query, code in [("room=", "invalid_room"), ("room=a&to=b", "invalid_target"),
                        ("broadcast=maybe", "invalid_target")]:
        status, answer = post_chunked(server, query, [b"x"])
        assert status == 400, (query, answer)
        assert answer["error"]["code"] == code, (query, answer)


def test_bad_chunking_is_400_and_the_members_hear_the_cut(start_server):
    server = start_server()
    ann = member(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(
            b"POST /api/publish?room=r HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nabcd\r\nzz\r\n"
        )
        response = raw.recv(4096).decode()
    assert response.startswith("HTTP/1.1 400 "), response
    assert "malformed chunked body" in response, response
    assert events(ann)["event"] == "stream:start"
    assert b"".join(ann.recv_streaming()) == b"abcd"
    end = events(ann)
    assert end["event"] == "stream:end" and end["data"]["complete"] is False, end
    ann.close()


def test_a_publish_past_max_stream_size_is_413_and_cut(start_server):
    server = start_server("--max-stream-size", str(4 * CHUNK))
    ann = member(server)
    status, answer = post_chunked(server, "room=r", [b"y" * CHUNK] * 8)
    assert status == 413, answer
    assert answer["error"]["code"] == "stream_too_large", answer
    assert events(ann)["event"] == "stream:start"
    received = b"".join(ann.recv_streaming())
    assert len(received) <= 4 * CHUNK
    assert events(ann)["data"]["complete"] is False
    ann.close()
