"""Graceful shutdown of `switchboard serve` on SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from hubclient import RawClient
from httpcalls import metrics

DEADLINE = 5  # --shutdown-timeout


def stop_with(server, signum) -> tuple[int, float]:
    """Sends the signal; returns the exit status and how long the exit took."""
    started = time.monotonic()
    server.process.send_signal(signum)
    status = server.process.wait(DEADLINE + 5)
    return status, time.monotonic() - started


def ends_with_end_then_1001(client) -> None:
    """What a client gets after the signal: `end`, then a 1001 close, nothing else."""
    after = [m for m in client.drain(2.0) if m.get("event") != "userlist"]
    assert after == [{"event": "end"}], after
    assert client.close_code() == 1001


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_sends_end_and_1001_to_every_client_and_exits_0(start_server, connect, signum):
    server = start_server("--shutdown-timeout", str(DEADLINE))
    clients = [connect(server.ws) for _ in range(3)] + [connect(server.ws, msgpack=True)]
    clients[0].join("lobby")
    clients[1].join("lobby")
    status, took = stop_with(server, signum)
    assert status == 0
    assert took < DEADLINE
    for client in clients:
        ends_with_end_then_1001(client)
    assert "panicked" not in server.log()


def test_sigterm_closes_echo_connections_with_1001(start_server):
    server = start_server("--shutdown-timeout", str(DEADLINE))
    with ws_connect(server.echo, proxy=None, open_timeout=5) as ws:
        ws.send("before")
        assert ws.recv(timeout=5) == "before"
        status, _ = stop_with(server, signal.SIGTERM)
        assert status == 0
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1001


def test_sigterm_with_no_clients_exits_0_at_once(start_server):
    server = start_server("--shutdown-timeout", str(DEADLINE))
    status, took = stop_with(server, signal.SIGTERM)
    assert status == 0
    assert took < 1.0


def test_sigterm_exits_within_the_deadline_when_a_client_does_not_read(start_server, connect):
    """A client that reads nothing keeps its `end` and close stuck behind
    what fills its socket; the server still exits by the deadline."""
    server = start_server("--shutdown-timeout", "2")
    sender = connect(server.ws)
    stuck = RawClient(server.port)
    stuck.send({"event": "join", "room": "r"})
    for n in range(400):
        sender.send({"event": "m", "room": "r", "data": "x" * 16000, "echo": False})
    sender.request({"event": "users"})
    assert metrics(server)["switchboard_slow_consumers_total"] == 0
    status, took = stop_with(server, signal.SIGTERM)
    assert status == 0
    assert took < 2 + 1.0
    stuck.close()


def test_clients_that_leave_after_end_are_not_waited_for(start_server, connect):
    """A client that answers the close at once lets the server exit long
    before the deadline."""
    server = start_server("--shutdown-timeout", "30")
    clients = [connect(server.ws) for _ in range(20)]
    status, took = stop_with(server, signal.SIGTERM)
    assert status == 0
    assert took < 2.0
    for client in clients:
        ends_with_end_then_1001(client)


def test_no_new_connections_after_sigterm(start_server):
    server = start_server("--shutdown-timeout", str(DEADLINE))
    port = server.port
    stop_with(server, signal.SIGTERM)
    with pytest.raises(OSError):
        ws_connect(f"ws://127.0.0.1:{port}/ws", proxy=None, open_timeout=2)
