"""The seeds' own programs against `switchboard serve` started with the one
setting docs/SEEDS.md gives for each: the command is read from that page.

- 000 IS2: a page's plain WebSocket on `ws://HOST:PORT` (no path) receives
  every address message without subscribing and gets `{"handshake":true}`
  for what it sends; IS2's ZeroMQ consumer (a PULL) gets `{path, value}`.
- 003 Espruino: the rooms protocol's bad input (the page and the Node
  clients run in tests/browser/seeds.test.mjs).
- `{path, value}` accepted everywhere, and its bad forms refused with a
  clear error; subprotocols chosen per endpoint.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import zmq
from websockets.sync.client import connect as ws_connect

from hubclient import Client
from httpcalls import http
from seeddoc import SEEDS_MD, seed_command
from serverproc import free_port

TIMEOUT = 5.0


def plain(url: str, subprotocols: list[str] | None = None):
    """A plain WebSocket, as a browser page opens one."""
    return ws_connect(
        url,
        subprotocols=subprotocols,
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        ping_interval=None,
    )


def messages(ws, until, timeout: float = TIMEOUT) -> list:
    """Receives (JSON-decoding what is JSON) until `until(received)` holds."""
    received: list = []
    deadline = time.monotonic() + timeout
    while not until(received):
        frame = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        try:
            received.append(json.loads(frame))
        except ValueError:
            received.append(frame)
    return received


def quiet(ws, seconds: float = 0.3) -> list:
    """What arrives within `seconds` (nothing, usually)."""
    got = []
    try:
        while True:
            got.append(json.loads(ws.recv(timeout=seconds)))
    except TimeoutError:
        return got


# ---- 000 IS2 -------------------------------------------------------------------------


def test_is2_page_and_zeromq_consumer_as_they_are(start_server):
    zport = free_port()
    server = start_server(*seed_command("000", {10080: zport}))
    # IS2's ZeroMQ output, from the seed:
    #     server.output = function( path, typetags, values ) {
    #       this.send( JSON.stringify({ 'path': path, 'value':values }) )
    #     }
    # so its consumer is a PULL reading {path, value}.
    context = zmq.Context()
    try:
        pull = context.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))
        pull.connect(f"tcp://127.0.0.1:{zport}")
        # IS2's test page: new WebSocket('ws://' + host + ':9080'), no path.
        page = f"ws://127.0.0.1:{server.port}"
        with plain(page) as one, plain(page) as two:
            for ws in (one, two):
                assert messages(ws, lambda r: r)[0]["event"] == "ready"
            # The PUSH drops what it gets before the consumer is connected.
            deadline = time.monotonic() + TIMEOUT
            while pull.poll(0) == 0:
                assert time.monotonic() < deadline, "the ZeroMQ consumer did not connect"
                http("POST", f"{server.http}/api/publish", {"path": "/warm", "values": [0]})
                time.sleep(0.05)
            while pull.poll(100):
                pull.recv()
            for ws in (one, two):
                quiet(ws)

            # A page sends IS2's shape: every page gets it, as {path, values},
            # without having subscribed; the sender is answered as IS2 does.
            one.send(json.dumps({"path": "/slider/1", "value": [0.5, "x"]}))
            got = messages(one, lambda r: len(r) >= 2)
            assert {"path": "/slider/1", "values": [0.5, "x"]} in got, got
            assert {"handshake": True} in got, got
            assert messages(two, lambda r: r) == [{"path": "/slider/1", "values": [0.5, "x"]}]
            assert json.loads(pull.recv()) == {"path": "/slider/1", "value": [0.5, "x"]}

            # Published by a hub client on /ws or over HTTP: the same.
            hub = Client(server.ws)
            hub.send({"path": "/sensors/hall/motion", "values": [1]})
            http("POST", f"{server.http}/api/publish", {"path": "/api/x", "value": 7})
            for ws in (one, two):
                got = messages(ws, lambda r: len(r) >= 2)
                # Two publishers, two connections: no order between them.
                assert sorted(got, key=lambda m: m["path"]) == [
                    {"path": "/api/x", "values": [7]},
                    {"path": "/sensors/hall/motion", "values": [1]},
                ], got
            assert json.loads(pull.recv()) == {"path": "/sensors/hall/motion", "value": [1]}
            assert json.loads(pull.recv()) == {"path": "/api/x", "value": [7]}
            assert quiet(hub.ws) == [], "a hub client subscribes to what it wants"
            hub.close()
    finally:
        context.destroy(linger=0)
    # `/` is still the chat page for a browser that asks for a page.
    page = http("GET", f"{server.http}/")
    assert page.status == 200 and "<html" in page.text.lower()


def test_the_endpoint_table_of_seeds_md(start_server, tmp_path):
    """The `[[endpoint]]` example of docs/SEEDS.md, as a config file."""
    found = re.search(r"```toml\n(\[\[endpoint\]\].+?)```", SEEDS_MD.read_text(), re.S)
    assert found, "docs/SEEDS.md has no [[endpoint]] example"
    config = tmp_path / "seeds.toml"
    config.write_text(found.group(1))
    server = start_server("--config", str(config))
    with plain(f"ws://127.0.0.1:{server.port}/", ["protocolOne"]) as page:
        assert page.subprotocol == "protocolOne"
        assert messages(page, lambda r: r)[0]["event"] == "ready"
        page.send(json.dumps({"path": "/a", "value": 1}))
        got = messages(page, lambda r: len(r) >= 2)
        assert sorted(map(json.dumps, got)) == sorted(
            map(json.dumps, [{"path": "/a", "values": [1]}, {"handshake": True}])
        )


# ---- {path, value} everywhere ----------------------------------------------------------


def test_value_is_accepted_and_bad_values_are_refused_clearly(start_server):
    server = start_server()
    subscriber = Client(server.ws)
    assert "error" not in subscriber.request(
        {"event": "subscribe", "data": {"pattern": "/a/**"}}
    )
    sender = Client(server.ws)
    # IS2's `value`: an array, or one value standing for a list of one.
    for sent, values in [
        ({"path": "/a/1", "value": [1, "x"]}, [1, "x"]),
        ({"path": "/a/2", "value": 5}, [5]),
        ({"path": "/a/3", "value": {"k": [1]}}, [{"k": [1]}]),
    ]:
        assert sender.request(sent)["data"] == {"delivered": 1}
        assert subscriber.next() == {"path": sent["path"], "values": values}
    # Bad forms: a clear error, the connection stays open, nothing delivered.
    for bad, wording in [
        ({"path": "/a/4", "values": 5}, '"values" must be an array'),
        ({"path": "/a/5", "values": [1], "value": [2]}, "not both"),
    ]:
        sender.send(bad)
        error = sender.next()
        assert error["event"] == "error", error
        assert error["data"]["code"] == "invalid_message", error
        assert wording in error["data"]["message"], error
    assert subscriber.silent() == []
    assert sender.request({"path": "/a/6", "values": [6]})["data"] == {"delivered": 1}
    assert subscriber.next() == {"path": "/a/6", "values": [6]}
    # The HTTP API: the same rule.
    response = http("POST", f"{server.http}/api/publish", {"path": "/a/7", "value": "s"})
    assert response.status == 200 and response.json() == {"delivered": 1}
    assert subscriber.next() == {"path": "/a/7", "values": ["s"]}
    response = http("POST", f"{server.http}/api/publish", {"path": "/a/8", "values": [1], "value": 2})
    assert response.status == 400
    assert response.json()["error"]["code"] == "invalid_message"
    assert subscriber.silent() == []


# ---- subprotocols ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, offered, answered",
    [
        ("/my_websocket", ["protocolOne"], "protocolOne"),
        ("/my_websocket", ["x", "protocolOne"], "protocolOne"),
        ("/my_websocket", ["x"], None),
        ("/my_websocket", None, None),
        ("/echo", ["b", "a"], "b"),
        ("/echo", None, None),
        ("/ws", ["x", "switchboard.msgpack", "switchboard.json"], "switchboard.json"),
        ("/ws", ["x"], None),
    ],
)
def test_each_endpoint_answers_its_subprotocol(start_server, path, offered, answered):
    server = start_server(*seed_command("003"))
    with plain(f"ws://127.0.0.1:{server.port}{path}", offered) as ws:
        assert ws.subprotocol == answered


# ---- 003 Espruino: bad input ---------------------------------------------------------------


def test_espruino_rooms_bad_input_is_answered_and_nothing_is_lost(start_server):
    server = start_server(*seed_command("003"), env={"SWITCHBOARD_LOG": "info"})
    url = f"ws://127.0.0.1:{server.port}/my_websocket"
    with plain(url, ["protocolOne"]) as one, plain(url, ["protocolOne"]) as two:
        assert one.recv(timeout=TIMEOUT) == "User Joined"
        assert two.recv(timeout=TIMEOUT) == "User Joined"
        for bad, code in [
            ("Hello to Espruino!", "invalid_json"),
            ('{"hello":1}', "invalid_message"),
            ("[1,2]", "invalid_message"),
            ('{"room":"r"}', "invalid_message"),
            ('{"join":5}', "invalid_room"),
            ('{"join":"r","room":"","msg":"x"}', "invalid_room"),
        ]:
            one.send(bad)
            reply = json.loads(one.recv(timeout=TIMEOUT))
            assert reply["event"] == "error", (bad, reply)
            assert reply["data"]["code"] == code, (bad, reply)
            assert reply["data"]["message"], reply
        # The refused join did nothing: a message to "r" reaches no one yet.
        two.send(json.dumps({"room": "r", "msg": "nobody"}))
        assert quiet(one) == [] and quiet(two) == []
        # Still open, and what follows works.
        one.send(json.dumps({"join": "r"}))
        one.send(json.dumps({"room": "r", "msg": "joined"}))  # in order after the join
        assert one.recv(timeout=TIMEOUT) == "joined"
        two.send(json.dumps({"room": "r", "msg": "after the errors"}))
        assert one.recv(timeout=TIMEOUT) == "after the errors"
        two.send(json.dumps({"room": "all", "msg": {"n": 1}}))
        assert one.recv(timeout=TIMEOUT) == '{"n":1}'
        assert two.recv(timeout=TIMEOUT) == '{"n":1}'
        one.send(json.dumps({"msg": "for the log"}))
        deadline = time.monotonic() + TIMEOUT
        while "Server got: for the log" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
