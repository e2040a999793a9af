"""Clustering over Redis: several `switchboard serve` processes act as one.

Each test starts its own `redis-server` on a free loopback port (stopped by
PID), and two or three nodes with `--redis`, then checks every route across
nodes with real WebSocket clients; the fault tests kill Redis or a node.

Nodes run with a 0.5 s heartbeat and a 2 s TTL so that the failure tests are
quick; the defaults (3 s and 10 s) change only how long they would wait.
A connection becomes known to the other nodes one Redis hop after it
connects or joins (docs/CLUSTERING.md), so tests wait for that (`see`)
before addressing it from another node, as a client would see it in a user
list first.
"""

from __future__ import annotations

import time

import pytest

from httpcalls import http, metrics
from redisproc import RedisServer
from serverproc import Server, wait_for

HEARTBEAT = 0.5
TTL = 2.0
FAST = ("--cluster-heartbeat", str(HEARTBEAT), "--cluster-ttl", str(TTL))


# ---- fixtures and helpers ----------------------------------------------------------


@pytest.fixture
def redis(request):
    server = RedisServer().start()
    yield server
    if getattr(request.node, "failed_call", False):
        print(f"--- log of redis-server (port {server.port})\n{server.log()}")
    server.cleanup()


@pytest.fixture
def cluster(redis, start_server):
    """`cluster(n, *flags)` starts n nodes on the test's Redis and waits until
    each is up and knows the others."""

    def start(n: int = 2, *flags: str):
        nodes = [start_server("--redis", redis.url, *FAST, *flags) for _ in range(n)]
        wait_healthy(nodes)
        return nodes

    return start


def health(node) -> dict:
    return http("GET", node.http + "/healthz").json()


def wait_healthy(nodes, timeout: float = 10.0) -> None:
    """Until every node says `cluster: ok` and counts them all."""
    wait_for(
        lambda: all(
            (h := health(node))["cluster"] == "ok" and h["nodes"] == len(nodes) for node in nodes
        ),
        timeout,
        f"{len(nodes)} healthy nodes",
    )


def ids(entries) -> set[str]:
    return {entry["id"] for entry in entries}


def users(client, room: str | None = None) -> list[dict]:
    message = {"event": "users"} if room is None else {"event": "users", "room": room}
    reply = client.request(message, ack="users")
    assert "error" not in reply, reply
    return reply["data"]


def see(client, expected, room: str | None = None, timeout: float = 5.0) -> None:
    """Waits until `client`'s node lists exactly these clients (in `room`)."""
    want = {c.id for c in expected}
    wait_for(lambda: ids(users(client, room)) == want, timeout, f"users {want} in {room}")


def next_userlist(client, expected: list[dict], room: str, timeout: float = 5.0) -> float:
    """Reads user lists of `room` until one equals `expected` (lists in
    between are allowed); returns when it came, as time.monotonic()."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            message = client.recv(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if message.get("event") == "userlist" and message.get("room") == room:
            if message["data"] == expected:
                return time.monotonic()
            seen.append(message["data"])
    raise AssertionError(f"no userlist {expected}; got {seen}")


def entry(client, name: str | None = None) -> dict:
    return {"id": client.id, "name": name}


def listing(*entries: dict) -> list[dict]:
    return sorted(entries, key=lambda e: e["id"])


def chat_numbers(client, count: int, quiet: float = 1.0) -> list[int]:
    """The `data` of the next `chat` events until `count` came or `quiet`
    seconds pass without one."""
    got = []
    while len(got) < count:
        try:
            message = client.next(timeout=quiet)
        except TimeoutError:
            break
        assert message["event"] == "chat", message
        got.append(message["data"])
    return got


# ---- routing across nodes ------------------------------------------------------------


@pytest.mark.parametrize("channels", ["nodes", "shared"])
def test_room_chat_across_nodes_with_and_without_echo(cluster, connect, channels):
    n1, n2 = cluster(2, "--cluster-channels", channels)
    a, b, outsider = connect(n1.ws), connect(n2.ws), connect(n2.ws)
    a.join("lobby")
    see(b, [a], room="lobby")
    reply = b.request({"event": "join", "room": "lobby"})
    assert reply["data"] == {"room": "lobby", "members": 2}, "members on both nodes"
    see(a, [a, b], room="lobby")

    a.send({"event": "chat", "room": "lobby", "data": {"text": "hi"}})
    expected = {"event": "chat", "from": a.id, "room": "lobby", "data": {"text": "hi"}}
    assert a.next() == expected
    assert b.next() == expected

    reply = b.request({"event": "chat", "room": "lobby", "data": "no echo", "echo": False})
    assert reply["data"] == {"delivered": 1}, "the member on the other node"
    assert a.next() == {"event": "chat", "from": b.id, "room": "lobby", "data": "no echo"}
    assert b.silent() == []
    assert outsider.silent() == []


def test_a_non_member_on_another_node_may_send_to_a_room(cluster, connect):
    n1, n2 = cluster(2)
    member, outsider = connect(n1.ws), connect(n2.ws)
    member.join("lobby")
    see(outsider, [member], room="lobby")
    reply = outsider.request({"event": "chat", "room": "lobby", "data": "knock"})
    assert reply["data"] == {"delivered": 1}
    assert member.next() == {"event": "chat", "from": outsider.id, "room": "lobby", "data": "knock"}


def test_direct_message_to_a_client_on_another_node(cluster, connect):
    n1, n2 = cluster(2)
    a = connect(n1.ws + "?name=alice")
    b = connect(n2.ws)
    see(a, [a, b])
    reply = a.request({"event": "whisper", "to": b.id, "data": "psst"})
    assert reply["data"] == {"delivered": 1}, "known on the other node"
    assert b.next() == {
        "event": "whisper",
        "from": a.id,
        "from_name": "alice",
        "to": b.id,
        "data": "psst",
    }
    assert a.silent() == []

    reply = a.request({"event": "whisper", "to": "nobody123456", "data": "x"})
    assert reply["error"]["code"] == "unknown_target", "no node has it"

    b.close()
    see(a, [a])
    reply = a.request({"event": "whisper", "to": b.id, "data": "x"})
    assert reply["error"]["code"] == "unknown_target", "gone from every node"


@pytest.mark.parametrize("channels", ["nodes", "shared"])
def test_broadcast_reaches_every_node(cluster, connect, channels):
    nodes = cluster(3, "--cluster-channels", channels)
    a, b, c = (connect(node.ws) for node in nodes)
    for client in (a, b, c):
        see(client, [a, b, c])
    reply = a.request({"event": "announce", "broadcast": True, "data": "all", "echo": False})
    assert reply["data"] == {"delivered": 2}
    expected = {"event": "announce", "from": a.id, "broadcast": True, "data": "all"}
    assert b.next() == expected
    assert c.next() == expected
    assert a.silent() == []


@pytest.mark.parametrize("channels", ["nodes", "shared"])
def test_address_subscriptions_with_wildcards_across_nodes(cluster, connect, channels):
    n1, n2, n3 = cluster(3, "--cluster-channels", channels)
    publisher = connect(n1.ws)
    one_segment, deep, exact, other = connect(n2.ws), connect(n3.ws), connect(n3.ws), connect(n2.ws)
    for client, pattern in [
        (one_segment, "/sensors/*/motion"),
        (deep, "/sensors/**"),
        (exact, "/sensors/hall/motion"),
        (other, "/lights/*"),
    ]:
        reply = client.request({"event": "subscribe", "data": {"pattern": pattern}})
        assert reply["data"] == {"pattern": pattern}

    reply = publisher.request({"path": "/sensors/hall/motion", "values": [1, 0.5, "hall"]})
    # Subscriptions are not shared between nodes: the ack counts this node's.
    assert reply["data"] == {"delivered": 0}
    expected = {"path": "/sensors/hall/motion", "values": [1, 0.5, "hall"]}
    for client in (one_segment, deep, exact):
        assert client.next() == expected
    assert other.silent() == []

    publisher.send({"path": "/sensors/roof/temp/c", "values": [21.5]})
    assert deep.next() == {"path": "/sensors/roof/temp/c", "values": [21.5]}
    assert one_segment.silent() == [] and exact.silent() == []


@pytest.mark.parametrize("channels", ["nodes", "shared"])
def test_http_publish_on_one_node_reaches_clients_on_another(cluster, connect, channels):
    n1, n2 = cluster(2, "--cluster-channels", channels)
    b = connect(n2.ws)
    b.join("lobby")
    b.request({"event": "subscribe", "data": {"pattern": "/sensors/**"}})
    watcher = connect(n1.ws)
    see(watcher, [b], room="lobby")

    def publish(body):
        response = http("POST", n1.http + "/api/publish", body)
        assert response.status == 200, response.text
        return response.json()

    assert publish({"room": "lobby", "event": "chat", "data": "backend"}) == {"delivered": 1}
    assert b.next() == {"event": "chat", "room": "lobby", "data": "backend"}
    assert publish({"to": b.id, "event": "notice", "data": "you"}) == {"delivered": 1}
    assert b.next() == {"event": "notice", "to": b.id, "data": "you"}
    assert publish({"broadcast": True, "event": "notice", "data": "all"}) == {"delivered": 2}
    assert b.next() == {"event": "notice", "broadcast": True, "data": "all"}
    assert watcher.next() == {"event": "notice", "broadcast": True, "data": "all"}
    assert publish({"path": "/sensors/hall", "values": [1]}) == {"delivered": 0}
    assert b.next() == {"path": "/sensors/hall", "values": [1]}
    assert publish({"to": "nobody123456", "event": "notice"}) == {"delivered": 0}


def test_messages_from_one_sender_arrive_in_order_across_nodes(cluster, connect):
    n1, n2 = cluster(2)
    a, b = connect(n1.ws), connect(n2.ws)
    b.join("lobby")
    see(a, [b], room="lobby")
    for i in range(300):
        a.send({"event": "chat", "room": "lobby", "data": i})
    assert chat_numbers(b, 300) == list(range(300))


def test_msgpack_and_compressed_clients_get_messages_from_another_node(cluster, connect):
    n1, n2 = cluster(2)
    sender = connect(n1.ws)
    packed = connect(n2.ws, msgpack=True)
    plain = connect(n2.ws)  # the test client negotiates permessage-deflate
    for client in (sender, packed, plain):
        client.join("lobby")
    see(sender, [sender, packed, plain], room="lobby")
    data = {"n": [1, -2, 2.5, 1e300, True, None], "s": "é" * 200}  # over the 128-byte threshold
    sender.send({"event": "chat", "room": "lobby", "data": data, "echo": False})
    expected = {"event": "chat", "from": sender.id, "room": "lobby", "data": data}
    assert packed.next() == expected
    assert plain.next() == expected
    # MessagePack bin from the other node arrives to JSON clients as byte values.
    packed.send({"event": "chat", "room": "lobby", "data": b"\x00\xff", "echo": False})
    assert sender.next()["data"] == [0, 255]


# ---- presence across nodes -------------------------------------------------------------


def test_userlists_across_nodes_on_join_rename_leave_and_disconnect(cluster, connect):
    n1, n2 = cluster(2)
    a = connect(n1.ws + "?name=alice")
    b = connect(n2.ws + "?name=bob")
    a.join("lobby")
    next_userlist(a, [entry(a, "alice")], "lobby")

    b.join("lobby")
    both = listing(entry(a, "alice"), entry(b, "bob"))
    next_userlist(b, both, "lobby")
    next_userlist(a, both, "lobby")

    b.request({"event": "rename", "data": {"name": "robert"}})
    renamed = listing(entry(a, "alice"), entry(b, "robert"))
    next_userlist(a, renamed, "lobby")
    next_userlist(b, renamed, "lobby")

    b.request({"event": "leave", "room": "lobby"})
    next_userlist(a, [entry(a, "alice")], "lobby")

    b.join("lobby")
    next_userlist(a, renamed, "lobby")
    b.close()
    next_userlist(a, [entry(a, "alice")], "lobby")


def test_users_request_is_cluster_wide(cluster, connect):
    nodes = cluster(3)
    a, b, c = (connect(node.ws + f"?name={name}") for node, name in zip(nodes, "abc"))
    a.join("room")
    c.join("room")
    everyone = listing(entry(a, "a"), entry(b, "b"), entry(c, "c"))
    members = listing(entry(a, "a"), entry(c, "c"))
    for client in (a, b, c):
        wait_for(lambda: users(client) == everyone, 5, "everyone listed")
        wait_for(lambda: users(client, "room") == members, 5, "members listed")


def test_health_and_metrics_report_the_cluster(cluster, connect):
    n1, n2 = cluster(2)
    h = health(n1)
    assert h["status"] == "ok" and h["cluster"] == "ok" and h["nodes"] == 2
    assert len(h["node"]) == 12 and h["node"] != health(n2)["node"]
    a, b = connect(n1.ws), connect(n2.ws)
    b.join("lobby")
    see(a, [b], room="lobby")
    a.send({"event": "chat", "room": "lobby", "data": 1})
    assert b.next()["data"] == 1
    m1, m2 = metrics(n1), metrics(n2)
    assert m1["switchboard_cluster_up"] == 1 and m1["switchboard_cluster_nodes"] == 2
    assert m1["switchboard_cluster_remote_connections"] == 1
    assert m1["switchboard_cluster_messages_published_total"] >= 1
    assert m2["switchboard_cluster_messages_received_total"] >= 1
    assert m1["switchboard_cluster_messages_failed_total"] == 0


def test_a_single_node_needs_no_redis_and_reports_no_cluster(server, connect):
    h = health(server)
    assert "cluster" not in h and h["status"] == "ok"
    assert not any(name.startswith("switchboard_cluster") for name in metrics(server))


def test_redis_keys_are_removed_when_a_node_stops(cluster, redis, connect):
    _, n2 = cluster(2, "--redis-prefix", "sbtest")
    node = health(n2)["node"]
    assert redis.command("EXISTS", f"sbtest:hb:{node}") == 1
    assert node in redis.command("SMEMBERS", "sbtest:nodes")
    n2.stop()
    assert redis.command("EXISTS", f"sbtest:hb:{node}", f"sbtest:users:{node}") == 0
    assert node not in redis.command("SMEMBERS", "sbtest:nodes")
    assert redis.command("KEYS", "switchboard:*") == [], "the prefix is used everywhere"


# ---- failures --------------------------------------------------------------------------


def test_redis_killed_and_restarted_mid_run(cluster, redis, connect):
    """While Redis is away, messages between nodes are lost (exactly: those a
    node publishes while it cannot reach Redis); local delivery goes on; once
    both nodes say `cluster: ok` again, cross-node delivery is back without a
    restart. Everything sent before the kill and after the recovery arrives."""
    n1, n2 = cluster(2)
    sender, local = connect(n1.ws), connect(n1.ws)
    remote = connect(n2.ws)
    for client in (local, remote):
        client.join("run")
    see(sender, [local, remote], room="run")

    def burst(start: int, count: int = 20) -> list[int]:
        for i in range(start, start + count):
            sender.send({"event": "chat", "room": "run", "data": i})
        return list(range(start, start + count))

    before = burst(0)
    assert chat_numbers(remote, 20) == before
    assert chat_numbers(local, 20) == before

    redis.kill()
    wait_for(lambda: all(health(n)["cluster"] == "degraded" for n in (n1, n2)), 5, "degraded")
    assert all(http("GET", n.http + "/healthz").status == 200 for n in (n1, n2))
    assert metrics(n1)["switchboard_cluster_up"] == 0
    during = burst(100)
    # Local delivery does not wait for Redis; the ack counts only this node.
    assert chat_numbers(local, 20) == during
    reply = sender.request({"event": "chat", "room": "run", "data": "ack?", "echo": False})
    assert reply["data"] == {"delivered": 1}
    assert local.next()["data"] == "ack?"
    lost = metrics(n1)["switchboard_cluster_messages_failed_total"]
    assert lost >= 21, "published while Redis was unreachable: lost, and counted"

    redis.start()  # the same port, empty
    wait_healthy([n1, n2], timeout=15)
    after = burst(200)
    assert chat_numbers(local, 20) == after
    # The remote client got nothing from the outage, all of before and after.
    assert chat_numbers(remote, 20) == after

    # Both ways, and presence is whole again in the new Redis.
    remote.send({"event": "chat", "room": "run", "data": "back"})
    assert local.next()["data"] == "back"
    newcomer = connect(n2.ws)
    newcomer.join("run")
    see(sender, [local, remote, newcomer], room="run")
    assert redis.command("SCARD", "switchboard:nodes") == 2


def test_a_dropped_command_connection_recovers_by_itself(cluster, redis, connect):
    """Redis drops the nodes' command connections (not their subscriptions):
    the next heartbeat fails, and each node reconnects, rewrites its state
    and is `ok` again, idle or not."""
    n1, n2 = cluster(2)
    a, b = connect(n1.ws), connect(n2.ws)
    b.join("lobby")
    see(a, [b], room="lobby")
    assert redis.command("CLIENT", "KILL", "TYPE", "normal") >= 2
    for node in (n1, n2):
        wait_for(lambda: "delivery paused" in node.log(), 5, "the failure noticed")
    wait_healthy([n1, n2], timeout=5)
    assert metrics(n1)["switchboard_cluster_connects_total"] == 1, "pub/sub untouched"
    a.send({"event": "chat", "room": "lobby", "data": "still here"})
    assert b.next()["data"] == "still here"


def test_a_node_killed_leaves_the_user_lists_within_ttl(cluster, connect):
    n1, n2, n3 = cluster(3)
    a = connect(n1.ws + "?name=a")
    b = connect(n2.ws + "?name=b")
    doomed = connect(n3.ws + "?name=d")
    for client in (a, b, doomed):
        client.join("lobby")
    everyone = listing(entry(a, "a"), entry(b, "b"), entry(doomed, "d"))
    next_userlist(a, everyone, "lobby")
    next_userlist(b, everyone, "lobby")

    killed_at = time.monotonic()
    n3.kill()  # SIGKILL: no goodbye, its keys stay until they expire
    survivors = listing(entry(a, "a"), entry(b, "b"))
    bound = TTL + HEARTBEAT + 1.0  # TTL + one check interval + slack for a loaded machine
    for client in (a, b):
        arrived = next_userlist(client, survivors, "lobby", timeout=bound + 2)
        assert arrived - killed_at <= bound, f"{arrived - killed_at:.2f}s"
    assert ids(users(a)) == {a.id, b.id}
    reply = a.request({"event": "whisper", "to": doomed.id, "data": "x"})
    assert reply["error"]["code"] == "unknown_target"
    wait_for(lambda: health(n1)["nodes"] == 2, 5, "the dead node forgotten")


def test_a_node_stopped_gracefully_leaves_the_user_lists_at_once(redis, start_server, connect):
    # A long TTL: the users go because the node says goodbye, not by expiry.
    n1, n2 = (start_server("--redis", redis.url, "--cluster-ttl", "30") for _ in range(2))
    wait_healthy([n1, n2])
    a, b = connect(n1.ws), connect(n2.ws)
    a.join("lobby")
    b.join("lobby")
    next_userlist(a, listing(entry(a), entry(b)), "lobby")
    stopped_at = time.monotonic()
    n2.stop()
    arrived = next_userlist(a, [entry(a)], "lobby")
    assert arrived - stopped_at < 3.0


def test_a_node_started_without_redis_joins_when_redis_comes(start_server, connect):
    """Redis down at start: the node serves alone (degraded), and joins the
    cluster by itself once Redis is up."""
    redis = RedisServer()
    try:
        n1 = start_server("--redis", redis.url, *FAST)
        assert health(n1)["cluster"] == "degraded"
        solo = connect(n1.ws)
        solo.join("lobby")
        solo.send({"event": "chat", "room": "lobby", "data": "alone"})
        assert solo.next()["data"] == "alone"
        redis.start()
        n2 = start_server("--redis", redis.url, *FAST)
        wait_healthy([n1, n2])
        other = connect(n2.ws)
        see(other, [solo], room="lobby")
        other.send({"event": "chat", "room": "lobby", "data": "found you"})
        assert solo.next()["data"] == "found you"
    finally:
        redis.cleanup()


def test_invalid_cluster_settings_are_refused():
    for flags in (
        ["--redis", "nonsense://x"],
        ["--redis", "redis://127.0.0.1:1", "--cluster-ttl", "1", "--cluster-heartbeat", "2"],
        ["--redis", "redis://127.0.0.1:1", "--cluster-channels", "rooms"],
    ):
        server = Server(*flags)
        with pytest.raises(RuntimeError, match="exited"):
            server.start()
        server.log_path.unlink(missing_ok=True)
