"""Limits of `switchboard serve`: connections, message size, slow consumers."""

from __future__ import annotations

import threading
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from hubclient import Client, RawClient
from httpcalls import metrics
from serverproc import wait_for

KIB_PER_MIB = 1024
# The floods below send as fast as they can, from one connection: these
# tests are about slow readers, not about the sender's rate limit.
UNLIMITED_RATE = ("--max-message-rate", "0", "--max-byte-rate", "0")


# ---- max connections -------------------------------------------------------------------


def test_upgrade_over_max_connections_is_refused_with_503(start_server, connect):
    server = start_server("--max-connections", "2")
    connect(server.ws)
    connect(server.ws)
    with pytest.raises(InvalidStatus) as refused:
        Client(server.ws)
    assert refused.value.response.status_code == 503
    assert b"connection limit of 2" in refused.value.response.body


def test_echo_and_hub_connections_have_separate_limits(start_server, connect):
    """`--max-connections` bounds /ws, `--max-echo-connections` bounds /echo:
    echo connections at their limit lock out no hub client, and the reverse."""
    server = start_server("--max-connections", "2", "--max-echo-connections", "2")
    with ws_connect(server.echo, proxy=None, open_timeout=5), ws_connect(
        server.echo, proxy=None, open_timeout=5
    ):
        connect(server.ws)
        connect(server.ws)
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(server.echo, proxy=None, open_timeout=5)
        assert refused.value.response.status_code == 503
        with pytest.raises(InvalidStatus) as refused:
            Client(server.ws)
        assert refused.value.response.status_code == 503


def test_a_closed_connection_frees_its_slot(start_server, connect):
    server = start_server("--max-connections", "1")
    first = connect(server.ws)
    first.close()

    def second():
        try:
            return Client(server.ws)
        except InvalidStatus:
            return None

    wait_for(second, what="a new connection after the first closed").close()


# ---- message size -------------------------------------------------------------------


@pytest.fixture
def small(start_server):
    return start_server("--max-message-size", "1024")


def test_oversize_message_closes_with_1009(small, connect):
    a = connect(small.ws)
    a.send('{"event":"chat","room":"r","data":"' + "x" * 1100 + '"}')
    assert a.close_code() == 1009


def test_oversize_fragmented_message_closes_with_1009(small):
    """Two fragments of 600 bytes: each fits, the message does not. The
    second one is the last thing the client sends, so the close frame cannot
    be lost to a reset caused by data the server never read."""
    client = RawClient(small.port)
    client.send_frame(0x1, b'{"event":"chat","room":"r","data":"' + b"x" * 564, fin=False)
    client.send_frame(0x0, b"x" * 598 + b'"}')
    assert client.read_messages() == []
    assert client.close_code == 1009
    client.close()


def test_message_at_the_limit_is_accepted(small, connect):
    a = connect(small.ws)
    head = '{"event":"chat","room":"r","ack":1,"data":"'
    text = head + "x" * (1024 - len(head) - 2) + '"}'
    assert len(text) == 1024
    a.send(text)
    assert a.next() == {"event": "ack", "ack": 1, "data": {"delivered": 0}}


def test_oversize_message_leaves_other_clients_unaffected(small, connect):
    offender, a, b = connect(small.ws), connect(small.ws), connect(small.ws)
    for client in (offender, a, b):
        client.join("r")
    offender.send('{"event":"chat","room":"r","data":"' + "x" * 1100 + '"}')
    assert offender.close_code() == 1009
    a.send({"event": "chat", "room": "r", "data": "still here"})
    assert b.next()["data"] == "still here"
    assert a.next()["data"] == "still here"
    assert [m for m in b.drain() if m["event"] == "chat"] == []


# ---- a client that stops reading ---------------------------------------------------------


# 20,000 messages of about 4 KiB: 80 MiB in all, so a server that kept every
# message for the member that does not read would break the 64 MiB bound.
FLOOD = 20_000
PAYLOAD = "x" * 4000
RSS_LIMIT_KIB = 64 * KIB_PER_MIB


class Reader(threading.Thread):
    """Reads a room's messages on its own thread, checking their order."""

    def __init__(self, client: Client, expected: int):
        super().__init__(daemon=True)
        self.client, self.expected = client, expected
        self.received = 0
        self.error: str | None = None

    def run(self):
        try:
            while self.received < self.expected:
                message = self.client.next(timeout=10)
                if message["data"]["n"] != self.received:
                    self.error = f"message {message['data']['n']} arrived as #{self.received}"
                    return
                self.received += 1
        except Exception as error:  # reported by the test
            self.error = f"after {self.received} messages: {error!r}"


def flood(
    server, sender: Client, reader: Reader, count: int, ahead: int = 256, pad: str = PAYLOAD
) -> int:
    """Sends `count` messages to the room, never more than `ahead` messages
    ahead of the reader (so that only the member that does not read falls
    behind; keep it under the queue length). Returns the highest RSS seen, in KiB."""
    peak = server.rss_kib()
    deadline = time.monotonic() + 60
    for n in range(count):
        while n - reader.received > ahead:
            assert reader.is_alive() and time.monotonic() < deadline, reader.error or "reader stalled"
            time.sleep(0.001)
        sender.send({"event": "m", "room": "flood", "echo": False, "data": {"n": n, "pad": pad}})
        if n % 1000 == 0:
            peak = max(peak, server.rss_kib())
    reader.join(30)
    return max(peak, server.rss_kib())


def room_of_three(server, connect):
    sender, reading = connect(server.ws), connect(server.ws)
    reading.join("flood")
    slow = RawClient(server.port)
    slow.send({"event": "join", "room": "flood"})

    def both_in_the_room():
        return len(sender.request({"event": "users", "room": "flood"})["data"]) == 2

    wait_for(both_in_the_room, what="the slow client in the room")
    reading.drain(0.1)
    return sender, reading, slow


def test_client_that_stops_reading_is_closed_and_memory_stays_bounded(start_server, connect):
    server = start_server(*UNLIMITED_RATE)
    sender, reading, slow = room_of_three(server, connect)
    before = server.rss_kib()
    reader = Reader(reading, FLOOD)
    reader.start()
    peak = flood(server, sender, reader, FLOOD)

    assert reader.error is None, reader.error
    assert reader.received == FLOOD, "a member that reads must receive every message"
    growth = peak - before
    assert growth < RSS_LIMIT_KIB, f"RSS grew by {growth} KiB while one member did not read"
    assert metrics(server)["switchboard_slow_consumers_total"] == 1

    received = slow.read_messages()
    assert not slow.timed_out, "the slow client's connection was never closed"
    assert len(received) < FLOOD
    # The close frame may not fit in a socket the peer does not read; when it
    # does arrive it must say why.
    assert slow.close_code in (None, 1008)
    slow.close()


def test_slow_consumer_drop_policy_keeps_the_connection(start_server, connect):
    server = start_server(*UNLIMITED_RATE, "--slow-consumer", "drop", "--queue-len", "64")
    sender, reading, slow = room_of_three(server, connect)
    before = server.rss_kib()
    reader = Reader(reading, FLOOD // 4)
    reader.start()
    peak = flood(server, sender, reader, FLOOD // 4, ahead=16)

    assert reader.error is None and reader.received == FLOOD // 4, reader.error
    assert peak - before < RSS_LIMIT_KIB
    assert metrics(server)["switchboard_dropped_messages_total"] > 0
    assert metrics(server)["switchboard_slow_consumers_total"] == 0
    # Once it reads again, what it is sent arrives.
    slow.sock.settimeout(2)
    while (frame := slow.read_frame()) is not None:
        assert frame[0] == 0x1
    slow.timed_out = False
    slow.sock.settimeout(5)
    sender.send({"event": "hello", "to": slow.id, "data": "you are still here"})
    opcode, payload = slow.read_frame()
    assert b"you are still here" in payload
    slow.close()


def test_slow_consumer_closed_frees_its_slot(start_server, connect):
    server = start_server(*UNLIMITED_RATE, "--max-connections", "3", "--queue-len", "16")
    sender, reading, slow = room_of_three(server, connect)
    reader = Reader(reading, 2000)
    reader.start()
    flood(server, sender, reader, 2000, ahead=4, pad="x" * 8000)
    assert metrics(server)["switchboard_slow_consumers_total"] == 1
    slow.read_messages()
    slow.close()
    wait_for(lambda: metrics(server)["switchboard_websockets"] == 2, what="the slot freed")
    connect(server.ws)
    assert "panicked" not in server.log()


# ---- idle connections and keepalive ---------------------------------------------------


def test_idle_connection_is_closed_with_1001(start_server, connect):
    """Within 10 % of the timeout (see also test_admission.py). `started` is
    taken before the connect: the server's clock cannot start earlier."""
    server = start_server("--idle-timeout", "1")
    started = time.monotonic()
    a = connect(server.ws)
    assert a.close_code() == 1001
    took = time.monotonic() - started
    assert a.closed.rcvd.reason == "idle timeout"
    assert 1.0 <= took <= 1.1, f"closed {took:.3f} s after the connect, expected 1.0–1.1 s"


def test_data_messages_keep_a_connection_from_idling_out(start_server, connect):
    server = start_server("--idle-timeout", "1")
    a = connect(server.ws)
    for _ in range(5):
        time.sleep(0.4)
        assert a.request({"event": "users"})["event"] == "ack"


def test_client_that_does_not_answer_pings_is_dropped(start_server):
    server = start_server("--ping-interval", "1", "--pong-timeout", "1")
    silent = RawClient(server.port)
    started = time.monotonic()
    opcodes = []
    while (frame := silent.read_frame()) is not None:
        opcodes.append(frame[0])
    assert not silent.timed_out, "the server kept a connection that answers no ping"
    assert 0x9 in opcodes, "the server sent no ping"
    assert time.monotonic() - started < 4
    silent.close()
    wait_for(lambda: metrics(server)["switchboard_connections"] == 0, what="the connection removed")


def test_client_that_answers_pings_stays_connected(start_server, connect):
    server = start_server("--ping-interval", "1", "--pong-timeout", "1")
    a = connect(server.ws)  # websockets answers pings on its own
    time.sleep(3)
    assert a.request({"event": "users"})["event"] == "ack"
