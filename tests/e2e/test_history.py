"""Room history: offsets, recovery after a reconnect, `history` pages,
at-least-once acknowledgements (docs/PROTOCOL.md, "History and recovery").

One node keeps history in memory; a cluster keeps it in a real
`redis-server` (with its append-only file on, as the guarantees assume),
so a client cut off from one node gets what it missed from another. The
cluster tests use `switchboard connect` (the Rust client) as the client
that is cut off: its socket closed under it by a proxy, its node killed
with SIGKILL, or its node restarted.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from httpcalls import http
from hubclient import Client
from proxy import CuttableProxy
from redisproc import RedisServer
from serverproc import BINARY, wait_for

FAST = ("--cluster-heartbeat", "0.5", "--cluster-ttl", "2")
MESSAGES = 1000


# ---- helpers ------------------------------------------------------------------------


def publish(node, room: str, data, event: str = "n") -> dict:
    response = http("POST", node.http + "/api/publish", {"event": event, "room": room, "data": data})
    assert response.status == 200, response.text
    return response.json()


def room_messages(client: Client, count: int, timeout: float = 10.0) -> list[dict]:
    """The next `count` room messages (not acks, user lists or errors)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        message = client.recv(max(0.01, deadline - time.monotonic()))
        if message.get("event") not in ("ack", "userlist", "error"):
            got.append(message)
    return got


def join(client: Client, room: str, since: dict | None = None) -> tuple[dict, list[dict]]:
    """Joins; returns the ack's data and the messages that came before it
    (the replay)."""
    message = {"event": "join", "room": room}
    if since is not None:
        message["since"] = since
    client.send({**message, "ack": "j"})
    before = []
    deadline = time.monotonic() + 10
    while True:
        reply = client.recv(max(0.01, deadline - time.monotonic()))
        if reply.get("event") == "ack" and reply.get("ack") == "j":
            assert "error" not in reply, reply
            return reply["data"], before
        if reply.get("event") != "userlist":
            before.append(reply)


def members_on(node, room: str) -> int:
    with Client(node.ws) as probe:
        reply = probe.request({"event": "users", "room": room})
        return len(reply["data"])


@pytest.fixture
def redis_aof(request):
    server = RedisServer(aof=True).start()
    yield server
    if getattr(request.node, "failed_call", False):
        print(f"--- log of redis-server (port {server.port})\n{server.log()}")
    server.cleanup()


def two_nodes(start_server, redis, *flags):
    nodes = [
        start_server("--redis", redis.url, *FAST, "--history", "feed*", *flags) for _ in range(2)
    ]

    def healthy():
        return all(
            (h := http("GET", n.http + "/healthz").json())["cluster"] == "ok" and h["nodes"] == 2
            for n in nodes
        )

    wait_for(healthy, 10, "two healthy nodes")
    return nodes


# ---- one node ------------------------------------------------------------------------


def test_offsets_recovery_and_history_pages(start_server, connect):
    node = start_server("--history", "feed*", "--history", "short,size=5")
    a = connect(node.ws)
    joined, _ = join(a, "feed")
    epoch = joined["epoch"]
    assert (joined["offset"], joined["members"]) == (0, 1)
    reply = a.request({"event": "say", "room": "feed", "data": "one"})
    assert reply["data"] == {"delivered": 1, "offset": 1}
    [own] = room_messages(a, 1)
    assert (own["offset"], own["epoch"], own["data"]) == (1, epoch, "one")
    a.close()
    for i in range(5):
        answer = publish(node, "feed", i)
        assert (answer["offset"], answer["epoch"]) == (i + 2, epoch)
    # Back, from offset 1: the five it missed, in order, then the ack.
    b = connect(node.ws)
    joined, replayed = join(b, "feed", {"epoch": epoch, "offset": 1})
    assert [m["data"] for m in replayed] == [0, 1, 2, 3, 4]
    assert [m["offset"] for m in replayed] == [2, 3, 4, 5, 6]
    assert joined == {
        "room": "feed", "members": 1, "epoch": epoch, "offset": 6, "recovered": True, "replayed": 5
    }
    publish(node, "feed", "live")
    [live] = room_messages(b, 1)
    assert (live["offset"], live["data"]) == (7, "live")
    # Pages of what is kept.
    page = b.request({"event": "history", "room": "feed", "data": {"after": 3, "limit": 2}})["data"]
    assert [m["offset"] for m in page["messages"]] == [4, 5]
    assert (page["epoch"], page["offset"], page["oldest"]) == (epoch, 7, 1)
    end = b.request({"event": "history", "room": "feed", "data": {"after": 7}})["data"]
    assert end["messages"] == []
    # Another epoch, or an offset history no longer reaches: told, nothing replayed.
    for i in range(10):
        publish(node, "short", i)
    c = connect(node.ws)
    short, replayed = join(c, "short", {"epoch": "not-it", "offset": 3})
    assert (short["recovered"], short["replayed"], replayed) == (False, 0, [])
    c.send({"event": "leave", "room": "short"})
    short_epoch = short["epoch"]
    d = connect(node.ws)
    short, replayed = join(d, "short", {"epoch": short_epoch, "offset": 3})
    assert (short["recovered"], short["offset"], replayed) == (False, 10, [])
    e = connect(node.ws)
    short, replayed = join(e, "short", {"epoch": short_epoch, "offset": 5})
    assert short["recovered"] is True
    assert [m["data"] for m in replayed] == [5, 6, 7, 8, 9]
    # Bad requests are answered, and the connection stays.
    bad = e.request({"event": "join", "room": "feed", "since": {"offset": "x"}})
    assert bad["error"]["code"] == "invalid_message"
    none = e.request({"event": "history", "room": "lobby"})
    assert none["error"]["code"] == "no_history"
    assert e.request({"event": "users"})["event"] == "ack"


def test_a_rooms_without_history_carry_no_offsets(start_server, connect):
    node = start_server("--history", "feed*")
    a = connect(node.ws)
    joined, _ = join(a, "lobby")
    assert "epoch" not in joined
    a.send({"event": "say", "room": "lobby", "data": 1})
    [message] = room_messages(a, 1)
    assert "offset" not in message and "epoch" not in message


def test_recovery_while_publishing_has_no_gap_and_no_duplicate(start_server, connect):
    node = start_server("--history", "feed*,size=10000")
    first = connect(node.ws)
    joined, _ = join(first, "feed")
    stop = threading.Event()
    sent = []

    def publisher():
        while not stop.is_set() and len(sent) < 3000:
            sent.append(publish(node, "feed", len(sent))["offset"])

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        got = room_messages(first, 300)
        last = got[-1]["offset"]
        first.close()
        time.sleep(0.2)  # it misses what is published meanwhile
        second = connect(node.ws)
        again, replayed = join(second, "feed", {"epoch": joined["epoch"], "offset": last})
        assert again["recovered"] is True
        thread.join(60)
        stop.set()
        final = sent[-1]
        rest = room_messages(second, final - again["offset"], timeout=30)
        offsets = [m["offset"] for m in replayed + rest]
        assert offsets == list(range(last + 1, final + 1)), "every offset once, in order"
        assert [m["data"] for m in replayed + rest] == [o - 1 for o in offsets]
        assert second.silent(0.3) == []
    finally:
        stop.set()
        thread.join(60)


def test_an_acks_connection_is_closed_past_its_window(start_server, connect):
    node = start_server("--history", "feed*", "--history-unacked", "20")
    keeping_up = connect(node.ws + "?acks=1")
    lagging = connect(node.ws + "?acks=1")
    join(keeping_up, "feed")
    join(lagging, "feed")
    for i in range(60):
        publish(node, "feed", i)
        if i % 10 == 9:
            got = room_messages(keeping_up, 10)
            keeping_up.send({"event": "received", "data": {"feed": got[-1]["offset"]}})
    assert lagging.close_code() == 4002
    assert keeping_up.request({"event": "users", "room": "feed"})["event"] == "ack"


def test_large_messages_page_and_replay_within_the_queue_bounds(start_server, connect):
    """A `history` answer stops at 1 MiB; a replay of 5 MiB, more than a
    client's queue may hold (4 MiB), waits for it to read instead of
    closing it as a slow consumer."""
    node = start_server("--history", "feed*")
    a = connect(node.ws)
    joined, _ = join(a, "feed")
    a.send({"event": "leave", "room": "feed"})
    blob = "b" * 100_000
    for i in range(50):
        reply = a.request({"event": "n", "room": "feed", "data": {"i": i, "blob": blob}})
        assert reply["data"]["offset"] == i + 1
    b = connect(node.ws)
    page = b.request({"event": "history", "room": "feed", "data": {"limit": 1000}})["data"]
    assert 5 <= len(page["messages"]) <= 11, len(page["messages"])
    again, replayed = join(b, "feed", {"epoch": joined["epoch"], "offset": 0})
    assert again["recovered"] is True and again["replayed"] == 50
    assert [m["data"]["i"] for m in replayed] == list(range(50))


def test_memory_history_is_bounded(start_server, connect):
    # 64 KiB over all rooms: writing a second room past it empties the first.
    node = start_server("--history", "feed*", "--history-memory", "65536")
    blob = "x" * 1000
    for i in range(40):
        publish(node, "feed-a", {"i": i, "pad": blob})
    a = connect(node.ws)
    page = a.request({"event": "history", "room": "feed-a", "data": {"limit": 1000}})["data"]
    assert len(page["messages"]) == 40
    for i in range(60):
        publish(node, "feed-b", {"i": i, "pad": blob})
    after = a.request({"event": "history", "room": "feed-a", "data": {"limit": 1000}})["data"]
    assert after["messages"] == [] and after["epoch"] != page["epoch"], "emptied: a new epoch"
    kept = a.request({"event": "history", "room": "feed-b", "data": {"limit": 1000}})["data"]
    assert 0 < len(kept["messages"]) <= 60


# ---- a cluster -----------------------------------------------------------------------


def test_a_join_on_any_node_sees_one_numbering(start_server, redis_aof, connect):
    a_node, b_node = two_nodes(start_server, redis_aof)
    a = connect(a_node.ws)
    b = connect(b_node.ws)
    joined_a, _ = join(a, "feed")
    joined_b, _ = join(b, "feed")
    assert joined_a["epoch"] == joined_b["epoch"]
    wait_for(lambda: members_on(a_node, "feed") == 2, 5, "both members known")
    a.send({"event": "say", "room": "feed", "data": "from a"})
    b.send({"event": "say", "room": "feed", "data": "from b"})
    seen_a = [(m["offset"], m["data"]) for m in room_messages(a, 2)]
    seen_b = [(m["offset"], m["data"]) for m in room_messages(b, 2)]
    assert seen_a == seen_b, "one order on every node"
    assert [o for o, _ in seen_a] == [1, 2]
    # Acknowledged publishing: the HTTP answer has the offset once stored.
    answer = publish(b_node, "feed", "http")
    assert (answer["offset"], answer["epoch"]) == (3, joined_a["epoch"])


def test_publishing_fails_clearly_while_redis_is_away(start_server, redis_aof, connect):
    a_node, _ = two_nodes(start_server, redis_aof)
    a = connect(a_node.ws)
    join(a, "feed")
    redis_aof.kill()
    wait_for(lambda: http("GET", a_node.http + "/healthz").json()["cluster"] == "degraded", 5, "degraded")
    reply = a.request({"event": "say", "room": "feed", "data": "lost"})
    assert reply["error"]["code"] == "history_unavailable"
    response = http("POST", a_node.http + "/api/publish", {"event": "n", "room": "feed", "data": 1})
    assert response.status == 503 and response.json()["error"]["code"] == "history_unavailable"
    redis_aof.start()
    wait_for(lambda: http("GET", a_node.http + "/healthz").json()["cluster"] == "ok", 10, "ok again")
    answer = publish(a_node, "feed", "after")
    assert answer["offset"] == 1, "the room's history came back with Redis (AOF)"


@pytest.mark.parametrize("cut", ["socket", "sigkill", "restart"])
def test_connect_gets_every_message_exactly_once_from_another_node(
    cut, start_server, redis_aof
):
    """`switchboard connect` is cut off from node A (its socket closed by a
    proxy; A killed; A restarted) while 1,000 messages are published to its
    room on node B; it reconnects to B and prints each of them once, in order."""
    a_node, b_node = two_nodes(start_server, redis_aof)
    proxy = CuttableProxy(lambda: [a_node.port]) if cut == "socket" else None
    first_url = proxy.ws if proxy else a_node.ws
    consumer = subprocess.Popen(
        [
            str(BINARY), "connect", first_url, "--hub", "--json", "--room", "feed",
            "--fallback", b_node.ws, "--reconnect", "20",
            "--wait", str(MESSAGES), "--timeout", "60",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: members_on(b_node, "feed") == 1, 10, "the consumer in the room")
        published = []

        def publisher():
            for i in range(MESSAGES):
                published.append(publish(b_node, "feed", i)["offset"])

        thread = threading.Thread(target=publisher)
        thread.start()
        wait_for(lambda: len(published) >= 100, 10, "a hundred published")
        if cut == "socket":
            assert proxy.cut() == 1
            proxy.close()
        elif cut == "sigkill":
            a_node.kill()
        else:
            a_node.stop()
            a_node.start()
        thread.join(60)
        out, err = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
        if proxy:
            proxy.close()
    assert consumer.returncode == 0, err.decode()
    messages = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    numbers = [m["data"] for m in messages if m.get("event") == "n"]
    assert numbers == list(range(MESSAGES)), f"{len(numbers)} messages; stderr:\n{err.decode()}"
    assert "back in feed" in err.decode(), "it recovered after a reconnect"
