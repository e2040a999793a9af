"""Bridges opened and closed at run time through `/api/bridges`, against
real pyzmq and python-osc peers: traffic flows once an endpoint is opened
and stops once it is closed (its port free again), a subscriber of
`/switchboard/bridges/**` sees `opened`, `connected`, `disconnected` and
`closed`, and every refusal has its status and code.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from typing import Any

import pytest
import zmq

from hubclient import Client
from httpcalls import http
from serverproc import free_port
from test_bridges import (
    TIMEOUT,
    free_udp_port,
    osc_dgram,
    publish,
    received,
    send_udp,
    subscribe,
    tcp,
    udp,
    wait_until,
    warm_up,
    zmq_next,
    zsocket,
)

KEY = "bridge-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def zctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def api(server, method: str, id: str | None = None, body: dict | str | None = None, headers=AUTH):
    url = server.http + "/api/bridges" + ("" if id is None else "/" + id)
    return http(method, url, body, headers)


def event(client: Client, what: str, timeout: float = TIMEOUT) -> Any:
    """The value of the next bridge event `what` (other messages skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = client.next(timeout=max(0.0, deadline - time.monotonic()))
        if message.get("path") == f"/switchboard/bridges/{what}":
            assert len(message["values"]) == 1, message
            return message["values"][0]


def port_is_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    """Whether another program could bind the port now (TCP: listen on it,
    with SO_REUSEADDR as servers and libzmq set it, since the connections
    the bridge accepted linger in TIME_WAIT)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_a_zmq_push_opened_at_run_time_carries_traffic_until_closed(start_server, connect, zctx):
    server = start_server("--api-key", KEY)
    watcher = subscribe(connect(server.ws), "/switchboard/bridges/**")
    client = connect(server.ws)
    port = free_port()
    assert api(server, "GET").json() == {"bridges": [], "max_bridges": 32}

    opened = api(server, "POST", body={"kind": "zmq_push", "endpoint": tcp(port), "pattern": "/lights/**"})
    assert opened.status == 201, opened.text
    bridge = opened.json()
    id = f"zmq_push:{tcp(port)}"
    assert bridge["id"] == id
    assert bridge["local"] == tcp(port)
    assert bridge["patterns"] == ["/lights/**"]
    assert event(watcher, "opened") == {"id": id, "kind": "zmq_push", "endpoint": tcp(port), "local": tcp(port)}

    pull = zsocket(zctx, zmq.PULL, tcp(port))
    connected = event(watcher, "connected")
    assert connected["id"] == id and connected["kind"] == "zmq_push"
    assert connected["peer"].startswith("tcp://127.0.0.1:")
    warm_up(client, "/lights/warm", received(pull))
    publish(client, "/other", [0])  # not for this output
    publish(client, "/lights/1", [1, "on"])
    assert json.loads(zmq_next(pull, "/lights/warm")[0]) == {"path": "/lights/1", "values": [1, "on"]}

    listed = api(server, "GET").json()["bridges"]
    assert [b["id"] for b in listed] == [id]
    assert listed[0]["messages_out"] >= 2
    # The id in the path as it is, and percent-encoded.
    assert api(server, "GET", id).json()["id"] == id
    assert api(server, "GET", urllib.parse.quote(id, safe="")).json()["id"] == id

    again = api(server, "POST", body={"kind": "zmq_push", "endpoint": tcp(port)})
    assert again.status == 409 and again.json()["error"]["code"] == "already_open"

    # The peer goes: the monitor says so, once the PUSH next sends (it reads
    # nothing from its peers, so that is when it finds the connection gone).
    pull.close(linger=0)

    def gone():
        publish(client, "/lights/warm", [0])
        try:
            return event(watcher, "disconnected", timeout=0.1)
        except TimeoutError:
            return None

    assert wait_until("the PUSH to notice its peer gone", gone) == connected

    pull = zsocket(zctx, zmq.PULL, tcp(port))
    event(watcher, "connected")
    warm_up(client, "/lights/warm", received(pull))
    closed = api(server, "DELETE", id)
    assert closed.status == 200 and closed.json()["closed"]["id"] == id
    assert event(watcher, "closed")["id"] == id
    while pull.poll(0):
        pull.recv_multipart()
    publish(client, "/lights/1", [2])
    assert pull.poll(500) == 0, "nothing after the close"
    pull.close(linger=0)
    assert wait_until("the port to be free", lambda: port_is_free(port))
    assert api(server, "DELETE", id).status == 404
    assert api(server, "GET", id).status == 404
    assert api(server, "GET").json()["bridges"] == []


def test_inputs_opened_at_run_time_publish_until_all_are_closed(start_server, connect, zctx):
    server = start_server("--api-key", KEY)
    watcher = subscribe(connect(server.ws), "/switchboard/bridges/**")
    client = subscribe(connect(server.ws), "/in/**")
    osc_port, zmq_port = free_udp_port(), free_port()

    osc = api(server, "POST", body={"kind": "osc_listen", "endpoint": udp(osc_port), "name": "osc-in"})
    assert osc.status == 201, osc.text
    assert osc.json()["id"] == "osc-in"
    assert event(watcher, "opened")["id"] == "osc-in"
    pull = api(server, "POST", body={"kind": "zmq_pull", "endpoint": tcp(zmq_port)})
    assert pull.status == 201, pull.text
    assert event(watcher, "opened")["id"] == f"zmq_pull:{tcp(zmq_port)}"

    send_udp(osc_port, osc_dgram("/in/osc", 1, "a"))
    message = client.next()
    assert (message["path"], message["values"]) == ("/in/osc", [1, "a"])
    push = zsocket(zctx, zmq.PUSH, tcp(zmq_port))
    assert event(watcher, "connected")["id"] == f"zmq_pull:{tcp(zmq_port)}"
    push.send(json.dumps({"path": "/in/zmq", "values": [2]}).encode())
    message = client.next()
    assert (message["path"], message["values"]) == ("/in/zmq", [2])
    # A PULL reads from its peer, and sees it go at once.
    push.close(linger=0)
    assert event(watcher, "disconnected")["id"] == f"zmq_pull:{tcp(zmq_port)}"

    closed = api(server, "DELETE")
    assert closed.status == 200 and closed.json() == {"closed": 2}
    ids = {event(watcher, "closed")["id"], event(watcher, "closed")["id"]}
    assert ids == {"osc-in", f"zmq_pull:{tcp(zmq_port)}"}
    assert wait_until("the UDP port to be free", lambda: port_is_free(osc_port, socket.SOCK_DGRAM))
    assert wait_until("the TCP port to be free", lambda: port_is_free(zmq_port))
    send_udp(osc_port, osc_dgram("/in/osc", 3))
    assert client.silent(0.5) == []


def test_refusals(start_server, connect):
    server = start_server("--api-key", KEY, "--max-bridges", "2")
    # The key, as for POST /api/publish.
    assert api(server, "GET", headers={}).status == 401
    assert api(server, "GET", headers={"Authorization": "Bearer wrong"}).status == 403
    body = {"kind": "osc_send", "endpoint": udp(free_udp_port())}
    cross_site = api(server, "POST", body=body, headers={**AUTH, "Origin": "https://evil.example"})
    assert cross_site.status == 403
    # Bad bodies.
    for bad, says in [
        ("{", "EOF"),
        ({"kind": "zmq_rep", "endpoint": tcp(1)}, "unknown kind"),
        ({"kind": "zmq_pull", "endpoint": tcp(1), "pattern": "/a/**"}, "outputs only"),
        ({"kind": "osc_send", "endpoint": "nowhere"}, "HOST:PORT"),
        ({"kind": "osc_send", "endpoint": udp(1), "extra": 1}, "unknown field"),
        ({"kind": "osc_send", "endpoint": udp(1), "name": "a/b"}, "name"),
    ]:
        answer = api(server, "POST", body=bad)
        assert answer.status == 400, (bad, answer.text)
        assert answer.json()["error"]["code"] == "invalid_bridge"
        assert says in answer.json()["error"]["message"], (bad, answer.text)
    # A port something else holds.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        answer = api(server, "POST", body={"kind": "zmq_push", "endpoint": tcp(taken.getsockname()[1])})
        assert answer.status == 409 and answer.json()["error"]["code"] == "cannot_open", answer.text
    # The limit.
    assert api(server, "POST", body={**body, "name": "one"}).status == 201
    assert api(server, "POST", body={**body, "name": "one"}).json()["error"]["code"] == "already_open"
    assert api(server, "POST", body={"kind": "osc_listen", "endpoint": "127.0.0.1:0"}).status == 201
    full = api(server, "POST", body={"kind": "osc_listen", "endpoint": "127.0.0.1:0"})
    assert full.status == 409 and full.json()["error"]["code"] == "too_many_bridges", full.text
    assert api(server, "DELETE", "one").status == 200
    assert api(server, "POST", body={"kind": "osc_listen", "endpoint": "127.0.0.1:0"}).status == 201
    # Unknown ids, other methods.
    assert api(server, "DELETE", "nothing").json()["error"]["code"] == "unknown_bridge"
    put = api(server, "PUT", body=body)
    assert put.status == 405 and "POST" in put.headers["Allow"]
    # Nobody but the server publishes under /switchboard/.
    client = connect(server.ws)
    reply = client.request({"path": "/switchboard/bridges/opened", "values": [1]})
    assert reply["error"]["code"] == "invalid_address"
    spoof = http("POST", server.http + "/api/publish", {"path": "/switchboard/x", "values": []}, AUTH)
    assert spoof.status == 400


def test_no_api_key_no_bridge_api(start_server):
    server = start_server()
    answer = api(server, "GET", headers={})
    assert answer.status == 403
    assert "--api-key" in answer.json()["error"]["message"]


def test_more_configured_bridges_than_the_limit_stop_the_start(tmp_path):
    from serverproc import BINARY
    import subprocess

    result = subprocess.run(
        [str(BINARY), "serve", "--port", "0", "--max-bridges", "1",
         "--osc-listen", f"{udp(free_udp_port())},{udp(free_udp_port())}"],
        capture_output=True, text=True, timeout=10,
    )
    assert result.returncode != 0
    assert "max_bridges" in result.stderr
