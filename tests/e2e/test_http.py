"""The HTTP side of `switchboard serve`: the publish API, health, metrics,
the echo endpoint and the static files."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from httpcalls import http, metrics
from serverproc import wait_for

KEY = "s3cret-key"


def publish(server, body, **headers):
    return http("POST", server.http + "/api/publish", body, headers)


# ---- the API key ---------------------------------------------------------------------


@pytest.fixture
def keyed(start_server):
    return start_server("--api-key", KEY)


def test_publish_without_the_key_is_401(keyed):
    response = publish(keyed, {"broadcast": True, "event": "e"})
    assert response.status == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_publish_with_a_wrong_key_is_403(keyed):
    response = publish(keyed, {"broadcast": True, "event": "e"}, Authorization="Bearer nope")
    assert response.status == 403
    assert response.json()["error"]["code"] == "forbidden"
    response = publish(keyed, {"broadcast": True, "event": "e"}, **{"X-API-Key": "nope"})
    assert response.status == 403


def test_publish_with_the_key_is_200(keyed, connect):
    a = connect(keyed.ws)
    response = publish(keyed, {"broadcast": True, "event": "e"}, Authorization=f"Bearer {KEY}")
    assert (response.status, response.json()) == (200, {"delivered": 1})
    response = publish(keyed, {"broadcast": True, "event": "e"}, **{"X-API-Key": KEY})
    assert (response.status, response.json()) == (200, {"delivered": 1})
    assert [m["event"] for m in a.drain()] == ["e", "e"]


def test_refused_publish_delivers_nothing(keyed, connect):
    a = connect(keyed.ws)
    publish(keyed, {"broadcast": True, "event": "e"})
    publish(keyed, {"broadcast": True, "event": "e"}, Authorization="Bearer nope")
    assert a.drain() == []


def test_publish_needs_no_key_when_none_is_set(server):
    assert publish(server, {"broadcast": True, "event": "e"}).status == 200


# ---- targets (the bodies of docs/PROTOCOL.md) -------------------------------------------


def test_publish_to_a_room(server, connect):
    a, b, outsider = connect(server.ws), connect(server.ws), connect(server.ws)
    a.join("lobby")
    b.join("lobby")
    response = publish(server, '{"room":"lobby","event":"chat","data":{"text":"from the backend"}}')
    assert (response.status, response.json()) == (200, {"delivered": 2})
    expected = {"event": "chat", "room": "lobby", "data": {"text": "from the backend"}}
    assert a.next() == expected
    assert b.next() == expected
    assert outsider.silent() == []


def test_publish_to_one_connection(server, connect):
    a, b = connect(server.ws), connect(server.ws)
    response = publish(server, {"to": a.id, "event": "notice", "data": "just you"})
    assert (response.status, response.json()) == (200, {"delivered": 1})
    assert a.next() == {"event": "notice", "to": a.id, "data": "just you"}
    assert b.silent() == []


def test_publish_to_an_unknown_connection_delivers_nothing(server):
    response = publish(server, {"to": "nobody", "event": "notice"})
    assert (response.status, response.json()) == (200, {"delivered": 0})


def test_publish_to_everyone(server, connect):
    clients = [connect(server.ws) for _ in range(3)]
    response = publish(server, '{"broadcast":true,"event":"notice","data":"everyone"}')
    assert (response.status, response.json()) == (200, {"delivered": 3})
    for client in clients:
        assert client.next() == {"event": "notice", "broadcast": True, "data": "everyone"}


def test_publish_an_address_message(server, connect):
    subscriber, other = connect(server.ws), connect(server.ws)
    subscriber.request({"event": "subscribe", "data": {"pattern": "/sensors/**"}})
    response = publish(server, '{"path":"/sensors/hall/motion","values":[1]}')
    assert (response.status, response.json()) == (200, {"delivered": 1})
    assert subscriber.next() == {"path": "/sensors/hall/motion", "values": [1]}
    assert other.silent() == []


BAD_BODIES = [
    ("invalid_json", "not json"),
    ("invalid_message", '{"data":1}'),
    ("invalid_target", '{"event":"e"}'),
    ("invalid_address", '{"path":"nope"}'),
    ("invalid_address", '{"path":"/a/*"}'),
    ("invalid_message", '{"path":"/a","values":5}'),
    ("invalid_target", '{"event":"e","room":"lobby","broadcast":true}'),
    ("invalid_target", '{"event":"e","room":"lobby","to":"someone"}'),
    ("invalid_room", '{"event":"e","room":""}'),
    ("invalid_event", '{"event":"","broadcast":true}'),
    ("reserved_event", '{"event":"end","broadcast":true}'),
]


@pytest.mark.parametrize("code,body", BAD_BODIES)
def test_bad_publish_is_400_with_a_code(server, code, body):
    response = publish(server, body)
    assert response.status == 400
    assert response.json()["error"]["code"] == code


def test_publish_body_over_64_kib_is_413(server):
    body = json.dumps({"broadcast": True, "event": "e", "data": "x" * (64 * 1024)})
    assert publish(server, body).status == 413


def test_publish_needs_post(server):
    response = http("GET", server.http + "/api/publish")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"


# ---- health, metrics, static files -----------------------------------------------------


def test_healthz_reports_connections_and_rooms(server, connect):
    response = http("GET", server.http + "/healthz")
    assert response.status == 200
    body = response.json()
    assert body["status"] == "ok"
    assert (body["connections"], body["rooms"]) == (0, 0)
    assert body["uptime_seconds"] >= 0
    a = connect(server.ws)
    a.join("lobby")
    body = http("GET", server.http + "/healthz").json()
    assert (body["connections"], body["rooms"]) == (1, 1)


def test_metrics_counters_move(server, connect):
    before = metrics(server)
    a, b = connect(server.ws), connect(server.ws)
    b.join("lobby")
    a.request({"event": "chat", "room": "lobby", "data": "x" * 100})
    a.send("this is not JSON")
    a.next()
    publish(server, {"path": "/x", "values": []})
    after = metrics(server)
    assert after["switchboard_connections"] == 2
    assert after["switchboard_rooms"] == 1
    assert after["switchboard_connections_opened_total"] - before["switchboard_connections_opened_total"] == 2
    assert after["switchboard_messages_in_total"] - before["switchboard_messages_in_total"] == 3
    assert after["switchboard_bytes_in_total"] - before["switchboard_bytes_in_total"] > 100
    assert after["switchboard_messages_out_total"] > before["switchboard_messages_out_total"]
    assert after["switchboard_errors_total"] - before["switchboard_errors_total"] == 1
    assert after["switchboard_published_total"] - before["switchboard_published_total"] == 1
    a.close()
    b.close()
    closed = wait_for(
        lambda: (m := metrics(server))["switchboard_connections"] == 0 and m,
        what="both connections gone",
    )
    assert closed["switchboard_connections_closed_total"] - before["switchboard_connections_closed_total"] == 2
    assert closed["switchboard_websockets"] == 0


def test_metrics_is_prometheus_text(server):
    response = http("GET", server.http + "/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE switchboard_connections gauge" in response.text
    assert "# TYPE switchboard_messages_in_total counter" in response.text


def test_echo_endpoint_echoes_text_and_binary(server):
    with ws_connect(server.echo, proxy=None, open_timeout=5) as ws:
        ws.send("hello, echo")
        assert ws.recv(timeout=5) == "hello, echo"
        ws.send(b"\x00\x01\x02")
        assert ws.recv(timeout=5) == b"\x00\x01\x02"
        big = "y" * 200_000
        ws.send(big)
        assert ws.recv(timeout=5) == big


def test_echo_endpoint_sends_no_hub_events(server):
    with ws_connect(server.echo, proxy=None, open_timeout=5) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)


def test_chat_page_and_client_script_are_served(server):
    page = http("GET", server.http + "/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    script = http("GET", server.http + "/switchboard.js")
    assert script.status == 200 and "javascript" in script.headers["Content-Type"]


def test_unknown_path_is_404(server):
    assert http("GET", server.http + "/nothing-here").status == 404
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(f"ws://127.0.0.1:{server.port}/nothing-here", proxy=None, open_timeout=5)
    assert refused.value.response.status_code == 404


def test_websocket_path_over_plain_http_is_426(server):
    response = http("GET", server.http + "/ws")
    assert response.status == 426
    assert response.headers["Upgrade"].lower() == "websocket"
