"""The hub through `switchboard serve`: routing, acks, user lists, errors."""

from __future__ import annotations

import msgpack
import pytest
from websockets.sync.client import connect as ws_connect


def trio(server, connect, room: str | None = "lobby"):
    """Three clients, all in `room` (when given)."""
    clients = [connect(server.ws) for _ in range(3)]
    if room:
        for client in clients:
            client.join(room)
    return clients


# ---- connecting ---------------------------------------------------------------


def test_ready_gives_a_unique_id_and_no_name(server, connect):
    a, b = connect(server.ws), connect(server.ws)
    assert a.id != b.id
    assert len(a.id) == 12 and a.id.isalnum()
    assert a.name is None


def test_name_query_parameter_sets_the_initial_name(server, connect):
    a = connect(server.ws + "?name=Al%C3%AFce")
    assert a.name == "Alïce"


# ---- rooms ----------------------------------------------------------------------


def test_room_message_reaches_every_member_and_the_sender(server, connect):
    a, b, c = trio(server, connect)
    a.send({"event": "chat", "room": "lobby", "data": {"text": "hi"}})
    expected = {"event": "chat", "from": a.id, "room": "lobby", "data": {"text": "hi"}}
    assert a.next() == expected
    assert b.next() == expected
    assert c.next() == expected


def test_room_message_with_echo_false_leaves_the_sender_out(server, connect):
    a, b, c = trio(server, connect)
    reply = a.request({"event": "chat", "room": "lobby", "data": 1, "echo": False})
    assert reply["data"] == {"delivered": 2}
    assert b.next()["data"] == 1
    assert c.next()["data"] == 1
    assert a.silent() == []


def test_room_message_does_not_reach_non_members(server, connect):
    a, b, outsider = trio(server, connect, room=None)
    a.join("lobby")
    b.join("lobby")
    outsider.join("other")
    a.send({"event": "chat", "room": "lobby", "data": "x"})
    assert b.next()["data"] == "x"
    assert outsider.silent() == []


def test_non_member_may_send_to_a_room(server, connect):
    member, outsider = connect(server.ws), connect(server.ws)
    member.join("lobby")
    reply = outsider.request({"event": "chat", "room": "lobby", "data": "knock"})
    assert reply["data"] == {"delivered": 1}
    assert member.next() == {"event": "chat", "from": outsider.id, "room": "lobby", "data": "knock"}


def test_left_room_gets_no_more_messages(server, connect):
    a, b = connect(server.ws), connect(server.ws)
    a.join("lobby")
    b.join("lobby")
    reply = b.request({"event": "leave", "room": "lobby"})
    assert reply["data"] == {"room": "lobby", "members": 1, "was_member": True}
    a.send({"event": "chat", "room": "lobby", "data": "gone?"})
    assert a.next()["data"] == "gone?"
    assert b.silent() == []


def test_sender_name_travels_as_from_name(server, connect):
    a, b = connect(server.ws + "?name=alice"), connect(server.ws)
    b.join("lobby")
    a.send({"event": "chat", "room": "lobby", "data": None})
    assert b.next() == {"event": "chat", "from": a.id, "from_name": "alice", "room": "lobby"}


# ---- direct messages and broadcast ------------------------------------------------


def test_direct_message_reaches_only_its_target(server, connect):
    a, b, c = trio(server, connect)
    reply = a.request({"event": "whisper", "to": b.id, "data": "psst"})
    assert reply["data"] == {"delivered": 1}
    assert b.next() == {"event": "whisper", "from": a.id, "to": b.id, "data": "psst"}
    assert c.silent() == []
    assert a.silent() == []


def test_direct_message_to_an_unknown_id_is_an_error(server, connect):
    a = connect(server.ws)
    a.send({"event": "whisper", "to": "nobody", "data": "psst"})
    assert a.next() == {
        "event": "error",
        "data": {"code": "unknown_target", "message": "no connection with id nobody"},
    }


def test_broadcast_reaches_everyone_including_the_sender(server, connect):
    a, b, c = trio(server, connect, room=None)
    reply = a.request({"event": "announce", "broadcast": True, "data": "all"})
    assert reply["data"] == {"delivered": 3}
    for client in (a, b, c):
        assert client.next() == {"event": "announce", "from": a.id, "broadcast": True, "data": "all"}


def test_broadcast_with_echo_false_leaves_the_sender_out(server, connect):
    a, b, c = trio(server, connect, room=None)
    a.send({"event": "announce", "broadcast": True, "data": "all", "echo": False})
    assert b.next()["data"] == "all"
    assert c.next()["data"] == "all"
    assert a.silent() == []


def test_messages_from_one_sender_arrive_in_order(server, connect):
    a, b = connect(server.ws), connect(server.ws)
    b.join("lobby")
    for n in range(500):
        a.send({"event": "n", "room": "lobby", "data": n})
    assert [b.next()["data"] for _ in range(500)] == list(range(500))


# ---- acks ------------------------------------------------------------------------


ACKED_REQUESTS = {
    "join": {"event": "join", "room": "lobby"},
    "leave": {"event": "leave", "room": "lobby"},
    "rename": {"event": "rename", "data": {"name": "alice"}},
    "users": {"event": "users"},
    "room event": {"event": "chat", "room": "lobby", "data": 1},
    "direct event": {"event": "chat", "to": "SELF", "data": 1},
    "broadcast": {"event": "chat", "broadcast": True, "data": 1},
    "subscribe": {"event": "subscribe", "data": {"pattern": "/a/*"}},
    "unsubscribe": {"event": "unsubscribe", "data": {"pattern": "/a/*"}},
    "address": {"path": "/a/b", "values": [1]},
}


@pytest.mark.parametrize("kind", list(ACKED_REQUESTS))
def test_ack_is_answered_exactly_once(server, connect, kind):
    a = connect(server.ws)
    message = {k: (a.id if v == "SELF" else v) for k, v in ACKED_REQUESTS[kind].items()}
    a.send({**message, "ack": 41})
    acks = [m for m in a.drain() if m.get("event") == "ack"]
    assert len(acks) == 1, acks
    assert acks[0]["ack"] == 41 and "error" not in acks[0], acks[0]


ACKED_ERRORS = {
    "invalid_room": {"event": "join"},
    "invalid_target": {"event": "chat", "room": "r", "broadcast": True},
    "unknown_target": {"event": "chat", "to": "nobody"},
    "unknown_event": {"event": "nothing-handles-this"},
    "reserved_event": {"event": "ready"},
    "invalid_name": {"event": "rename", "data": {"name": "   "}},
    "invalid_address": {"path": "no-slash"},
    "invalid_pattern": {"event": "subscribe", "data": {"pattern": "/a/**/b"}},
    "invalid_message": {"data": 1},
}


@pytest.mark.parametrize("code", list(ACKED_ERRORS))
def test_failed_request_with_ack_gets_one_ack_with_the_error(server, connect, code):
    a = connect(server.ws)
    a.send({**ACKED_ERRORS[code], "ack": "x"})
    replies = a.drain()
    assert len(replies) == 1, replies
    reply = replies[0]
    assert reply["event"] == "ack" and reply["ack"] == "x"
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]
    assert "data" not in reply


def test_ack_ids_may_be_numbers_or_strings_and_come_back_unchanged(server, connect):
    a = connect(server.ws)
    for ack in (0, 7, -3, 2**53, "", "a string"):
        assert a.request({"event": "users"}, ack=ack)["ack"] == ack


def test_ack_that_is_neither_number_nor_string_is_invalid_ack(server, connect):
    a = connect(server.ws)
    a.send({"event": "users", "ack": {"id": 1}})
    [reply] = a.drain()
    assert reply["event"] == "ack" and reply["ack"] == {"id": 1}
    assert reply["error"]["code"] == "invalid_ack"


# ---- user lists ------------------------------------------------------------------


def userlist(client, room="lobby"):
    message = client.next("userlist")
    assert message["room"] == room
    return message["data"]


def entries(*clients_and_names):
    return sorted(
        ({"id": c.id, "name": n} for c, n in clients_and_names), key=lambda e: e["id"]
    )


def test_userlist_on_join(server, connect):
    a, b = connect(server.ws + "?name=alice"), connect(server.ws)
    a.send({"event": "join", "room": "lobby"})
    assert userlist(a) == entries((a, "alice"))
    b.send({"event": "join", "room": "lobby"})
    assert userlist(a) == entries((a, "alice"), (b, None))
    assert userlist(b) == entries((a, "alice"), (b, None))


def test_userlist_on_leave(server, connect):
    a, b = connect(server.ws), connect(server.ws)
    a.join("lobby")
    b.join("lobby")
    assert userlist(a) == entries((a, None), (b, None))
    b.send({"event": "leave", "room": "lobby"})
    assert userlist(a) == entries((a, None))


def test_userlist_on_rename(server, connect):
    a, b = connect(server.ws), connect(server.ws)
    a.join("lobby")
    b.join("lobby")
    assert userlist(a) == entries((a, None), (b, None))
    b.send({"event": "rename", "data": {"name": "bob"}})
    assert userlist(a) == entries((a, None), (b, "bob"))


def test_userlist_on_disconnect(server, connect):
    a, b = connect(server.ws), connect(server.ws)
    a.join("lobby")
    b.join("lobby")
    assert userlist(a) == entries((a, None), (b, None))
    b.close()
    assert userlist(a) == entries((a, None))


def test_userlist_changes_within_the_interval_come_as_one_list(server, connect):
    a = connect(server.ws)
    a.join("lobby")
    assert userlist(a) == entries((a, None))
    others = [connect(server.ws) for _ in range(3)]
    for other in others:
        other.send({"event": "join", "room": "lobby"})
    lists = [m for m in a.drain(0.5) if m.get("event") == "userlist"]
    assert 1 <= len(lists) < 3, lists
    assert lists[-1]["data"] == entries((a, None), *((o, None) for o in others))


def test_userlist_is_sent_only_to_that_rooms_members(server, connect):
    a, outsider = connect(server.ws), connect(server.ws)
    outsider.join("elsewhere")
    outsider.drain()
    a.join("lobby")
    assert userlist(a) == entries((a, None))
    assert [m for m in outsider.drain() if m.get("event") == "userlist"] == []


def test_users_lists_everyone_without_a_room(server, connect):
    a, b = connect(server.ws + "?name=alice"), connect(server.ws)
    reply = a.request({"event": "users"})
    assert reply["data"] == entries((a, "alice"), (b, None))


# ---- address subscriptions ----------------------------------------------------------


MATCHES = [
    ("/sensors/hall/motion", "/sensors/hall/motion", True),
    ("/sensors/hall/motion", "/sensors/hall/motionx", False),
    ("/sensors/hall/motion", "/sensors/hall", False),
    ("/sensors/*/motion", "/sensors/hall/motion", True),
    ("/sensors/*/motion", "/sensors/hall/door/motion", False),
    ("/sensors/h*l/motion", "/sensors/hall/motion", True),
    ("/sensors/h*l/motion", "/sensors/kitchen/motion", False),
    ("/sensors/h?ll", "/sensors/hall", True),
    ("/sensors/h?ll", "/sensors/hal", False),
    ("/sensors/h?ll", "/sensors/heell", False),
    ("/sensors/**", "/sensors", True),
    ("/sensors/**", "/sensors/hall", True),
    ("/sensors/**", "/sensors/hall/motion/x", True),
    ("/sensors/**", "/sensorsx/hall", False),
    ("/**", "/anything/at/all", True),
]


@pytest.mark.parametrize("pattern,address,matches", MATCHES)
def test_subscription_pattern_matching(server, connect, pattern, address, matches):
    subscriber, publisher = connect(server.ws), connect(server.ws)
    ack = subscriber.request({"event": "subscribe", "data": {"pattern": pattern}})
    assert ack["data"] == {"pattern": pattern}
    reply = publisher.request({"path": address, "values": [1, 0.5, "x"]})
    assert reply["data"] == {"delivered": 1 if matches else 0}
    if matches:
        assert subscriber.next() == {"path": address, "values": [1, 0.5, "x"]}
    assert subscriber.silent() == []


def test_overlapping_subscriptions_deliver_once(server, connect):
    a = connect(server.ws)
    for pattern in ("/a/b", "/a/*", "/a/**", "/**"):
        a.request({"event": "subscribe", "data": {"pattern": pattern}})
    assert a.request({"path": "/a/b", "values": []}, ack=2)["data"] == {"delivered": 1}
    assert a.drain() == [{"path": "/a/b", "values": []}]


def test_unsubscribe_stops_delivery(server, connect):
    a, b = connect(server.ws), connect(server.ws)
    a.request({"event": "subscribe", "data": {"pattern": "/x/*"}})
    reply = a.request({"event": "unsubscribe", "data": {"pattern": "/x/*"}}, ack=2)
    assert reply["data"] == {"pattern": "/x/*", "existed": True}
    assert b.request({"path": "/x/y"})["data"] == {"delivered": 0}
    again = a.request({"event": "unsubscribe", "data": {"pattern": "/x/*"}}, ack=3)
    assert again["data"] == {"pattern": "/x/*", "existed": False}
    assert a.silent() == []


def test_disconnect_drops_subscriptions(server, connect):
    a, b = connect(server.ws), connect(server.ws)
    a.request({"event": "subscribe", "data": {"pattern": "/x/**"}})
    a.close()
    b.drain(0.2)
    assert b.request({"path": "/x/y"})["data"] == {"delivered": 0}


def test_published_address_with_wildcards_is_refused(server, connect):
    a = connect(server.ws)
    reply = a.request({"path": "/sensors/*", "values": []})
    assert reply["error"]["code"] == "invalid_address"


# ---- bad input -------------------------------------------------------------------


def test_invalid_json_is_an_error_and_the_connection_stays_open(server, connect):
    a = connect(server.ws)
    a.send("this is not JSON")
    error = a.next()
    assert error["event"] == "error" and error["data"]["code"] == "invalid_json"
    assert a.request({"event": "users"})["data"] == [{"id": a.id, "name": None}]


def test_unknown_event_is_an_error_and_the_connection_stays_open(server, connect):
    a = connect(server.ws)
    a.send({"event": "nothing-handles-this"})
    error = a.next()
    assert error["event"] == "error"
    assert error["data"]["code"] == "unknown_event"
    assert '"nothing-handles-this"' in error["data"]["message"]
    assert a.request({"event": "users"})["event"] == "ack"


def test_binary_frame_without_msgpack_is_binary_not_supported(server, connect):
    a = connect(server.ws)
    a.send(b"\x81\xa5event\xa5users")
    assert a.next()["data"]["code"] == "binary_not_supported"
    assert a.request({"event": "users"})["event"] == "ack"


ERRORS = [
    ("invalid_message", "[1, 2]"),
    ("invalid_message", '{"data": 1}'),
    ("invalid_message", '{"event": 5}'),
    ("invalid_event", '{"event": "", "room": "r"}'),
    ("invalid_event", '{"event": "' + "e" * 65 + '", "room": "r"}'),
    ("invalid_event", '{"event": "a\\nb", "room": "r"}'),
    ("reserved_event", '{"event": "userlist", "room": "r"}'),
    ("reserved_event", '{"event": "end", "broadcast": true}'),
    ("invalid_target", '{"event": "x", "room": "r", "to": "y"}'),
    ("invalid_target", '{"event": "x", "to": "y", "broadcast": true}'),
    ("invalid_room", '{"event": "join"}'),
    ("invalid_room", '{"event": "join", "room": ""}'),
    ("invalid_room", '{"event": "join", "room": "' + "r" * 65 + '"}'),
    ("invalid_room", '{"event": "x", "room": ""}'),
    ("invalid_name", '{"event": "rename", "data": {"name": ""}}'),
    ("invalid_name", '{"event": "rename", "data": {"name": "' + "n" * 65 + '"}}'),
    ("invalid_address", '{"path": "sensors"}'),
    ("invalid_address", '{"path": "/a//b"}'),
    ("invalid_pattern", '{"event": "subscribe", "data": {"pattern": "no-slash"}}'),
    ("invalid_pattern", '{"event": "subscribe", "data": {}}'),
    ("unknown_event", '{"event": "x"}'),
]


@pytest.mark.parametrize("code,text", ERRORS)
def test_bad_message_gets_its_error_code(server, connect, code, text):
    a = connect(server.ws)
    a.send(text)
    replies = a.drain()
    assert len(replies) == 1, replies
    assert replies[0]["event"] == "error"
    assert replies[0]["data"]["code"] == code, replies[0]
    assert replies[0]["data"]["message"]


def test_too_many_rooms(server, connect):
    a = connect(server.ws)
    for n in range(100):
        a.send({"event": "join", "room": f"r{n}"})
    reply = a.request({"event": "join", "room": "one-too-many"}, ack="last")
    assert reply["error"]["code"] == "too_many_rooms"
    again = a.request({"event": "join", "room": "r0"}, ack="again")
    assert again["data"]["room"] == "r0", "joining a room one is in is not a new room"


def test_too_many_subscriptions(server, connect):
    a = connect(server.ws)
    for n in range(100):
        a.send({"event": "subscribe", "data": {"pattern": f"/p/{n}"}})
    reply = a.request({"event": "subscribe", "data": {"pattern": "/p/x"}}, ack="last")
    assert reply["error"]["code"] == "too_many_subscriptions"


# ---- MessagePack --------------------------------------------------------------------


def test_msgpack_client_and_json_client_share_a_room(server, connect):
    packed = connect(server.ws, msgpack=True)
    plain = connect(server.ws)
    assert packed.ws.subprotocol == "switchboard.msgpack"
    packed.join("lobby")
    plain.join("lobby")
    packed.send({"event": "chat", "room": "lobby", "data": {"text": "from msgpack", "n": [1, 2.5]}})
    expected = {"event": "chat", "from": packed.id, "room": "lobby", "data": {"text": "from msgpack", "n": [1, 2.5]}}
    assert plain.next() == expected
    assert packed.next() == expected
    plain.send({"event": "chat", "room": "lobby", "data": {"text": "from json"}})
    assert packed.next() == {"event": "chat", "from": plain.id, "room": "lobby", "data": {"text": "from json"}}


def test_msgpack_bin_arrives_to_json_clients_as_byte_values(server, connect):
    packed, plain = connect(server.ws, msgpack=True), connect(server.ws)
    packed.send({"event": "blob", "to": plain.id, "data": b"\x00\x01\xff"})
    assert plain.next() == {"event": "blob", "from": packed.id, "to": plain.id, "data": [0, 1, 255]}


def test_msgpack_client_may_send_json_text_and_is_answered_in_msgpack(server, connect):
    packed = connect(server.ws, msgpack=True)
    packed.ws.send('{"event":"users","ack":5}')
    frame = packed.ws.recv(timeout=5)
    assert isinstance(frame, bytes)
    reply = msgpack.unpackb(frame)
    assert reply == {"event": "ack", "ack": 5, "data": [{"id": packed.id, "name": None}]}


def test_truncated_msgpack_is_invalid_json_and_the_connection_stays_open(server, connect):
    packed = connect(server.ws, msgpack=True)
    packed.send(b"\x82\xa5event")  # a map of two entries, cut short
    assert packed.next()["data"]["code"] == "invalid_json"
    assert packed.request({"event": "users"})["event"] == "ack"


def test_json_subprotocol_is_plain_json(server, connect):
    with ws_connect(server.ws, subprotocols=["switchboard.json"], proxy=None, open_timeout=5) as ws:
        assert ws.subprotocol == "switchboard.json"
        assert '"event":"ready"' in ws.recv(timeout=5)
