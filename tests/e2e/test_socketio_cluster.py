"""Socket.IO connections across cluster nodes (docs/SOCKETIO.md, "Several
nodes"): a Socket.IO client on one node is an ordinary hub connection to
the others: in their user lists, reached by room messages, direct
messages and HTTP publishes sent there. A long-polling session lives on the
node that opened it: another node does not know its `sid`.

The Socket.IO client here is a few lines on `websockets` speaking Engine.IO
v4 packets over the WebSocket transport (the official client's tests are
in tests/browser/socketio.test.mjs).
"""

from __future__ import annotations

import json
import time

from websockets.sync.client import connect as ws_connect

from httpcalls import http
from serverproc import wait_for
from test_cluster import cluster, ids, redis, users, wait_healthy  # noqa: F401 (fixtures)

TIMEOUT = 5.0


class SocketIoClient:
    """Engine.IO `open`, CONNECT to `/`, then events; answers pings."""

    def __init__(self, node, auth: dict | None = None):
        url = node.ws.replace("/ws", "/socket.io/") + "?EIO=4&transport=websocket"
        self.ws = ws_connect(url, proxy=None, open_timeout=TIMEOUT, ping_interval=None, legacy=True)
        opened = self.ws.recv(timeout=TIMEOUT)
        assert opened.startswith("0{"), opened
        self.ws.send("40" + (json.dumps(auth) if auth else ""))
        connected = self.next_packet()
        assert connected.startswith("40{"), connected
        self.id = json.loads(connected[2:])["sid"]

    def next_packet(self, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            packet = self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            if packet == "2":
                self.ws.send("3")
                continue
            return packet

    def next_event(self, name: str, timeout: float = TIMEOUT) -> list:
        """The arguments of the next event `name` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self.next_packet(max(0.01, deadline - time.monotonic()))
            if packet.startswith("42["):
                event, *args = json.loads(packet[2:])
                if event == name:
                    return args

    def emit_with_ack(self, event: str, *args, ack: int = 1) -> list:
        self.ws.send(f"42{ack}" + json.dumps([event, *args]))
        prefix = f"43{ack}["
        deadline = time.monotonic() + TIMEOUT
        while True:
            packet = self.next_packet(max(0.01, deadline - time.monotonic()))
            if packet.startswith(prefix):
                return json.loads(packet[2 + len(str(ack)) :])

    def close(self) -> None:
        self.ws.close()


def test_a_socket_io_client_is_a_hub_connection_on_every_node(cluster, connect):  # noqa: F811
    n1, n2 = cluster(2)
    sio = SocketIoClient(n1)
    try:
        assert sio.emit_with_ack("join", "lobby") == [{"room": "lobby", "members": 1}]
        native = connect(n2.ws)
        wait_for(lambda: sio.id in ids(users(native, "lobby")), TIMEOUT, "the Socket.IO client in n2's list")
        native.join("lobby")

        native.send({"event": "chat", "room": "lobby", "data": {"text": "from n2"}})
        assert sio.next_event("chat") == [{"text": "from n2"}]

        reply = native.request({"event": "whisper", "to": sio.id, "data": "psst"})
        assert reply["data"] == {"delivered": 1}
        assert sio.next_event("whisper") == ["psst"]

        answer = http("POST", n2.http + "/api/publish", {"room": "lobby", "event": "news", "data": 7})
        assert answer.status == 200, answer.text
        assert sio.next_event("news") == [7]
        assert native.next("news")["data"] == 7

        listed = sio.emit_with_ack("users", {"room": "lobby"}, ack=2)[0]
        assert {entry["id"] for entry in listed} == {sio.id, native.id}, "a cluster-wide list"
    finally:
        sio.close()


def test_a_polling_session_is_known_only_on_its_node(cluster):  # noqa: F811
    n1, n2 = cluster(2)
    opened = http("GET", n1.http + "/socket.io/?EIO=4&transport=polling")
    assert opened.status == 200, opened.text
    sid = json.loads(opened.text[1:])["sid"]
    elsewhere = http("GET", n2.http + f"/socket.io/?EIO=4&transport=polling&sid={sid}")
    assert elsewhere.status == 400
    assert elsewhere.json() == {"code": 1, "message": "Session ID unknown"}
    posted = http("POST", n1.http + f"/socket.io/?EIO=4&transport=polling&sid={sid}", "40")
    assert posted.status == 200
    connected = http("GET", n1.http + f"/socket.io/?EIO=4&transport=polling&sid={sid}")
    assert connected.text.startswith('40{"sid":'), connected.text
