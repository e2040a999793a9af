"""`serve --global-userlist`: every connection gets the list of all users
(a `userlist` without `room`) when anyone connects, renames or leaves,
whatever rooms they are in; off by default; none past the 500-connection
size limit of user lists.
"""

from __future__ import annotations

import time

from hubclient import Client

TIMEOUT = 5.0


def hub_list(client: Client, timeout: float = TIMEOUT) -> list[dict] | None:
    """The next `userlist` without `room`, or None if none comes in time."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            message = client.recv(timeout=left)
        except TimeoutError:
            return None
        if message.get("event") == "userlist" and "room" not in message:
            return message["data"]


def until(client: Client, check) -> list[dict]:
    """Hub lists until one passes `check`; that one."""
    while True:
        users = hub_list(client)
        assert users is not None, "no hub list in time"
        if check(users):
            return users


def test_everyone_gets_everyone(start_server, connect):
    server = start_server("--global-userlist")
    alice = connect(server.ws + "?name=alice")
    assert hub_list(alice) == [{"id": alice.id, "name": "alice"}]
    bob = connect(server.ws + "?name=bob")
    bob.join("garden")
    alice.join("lounge")
    expected = sorted([{"id": alice.id, "name": "alice"}, {"id": bob.id, "name": "bob"}], key=lambda u: u["id"])
    for client in (alice, bob):
        assert until(client, lambda users: len(users) == 2) == expected

    bob.request({"event": "rename", "data": {"name": "robert"}})
    users = until(alice, lambda users: any(u["name"] == "robert" for u in users))
    assert {u["id"]: u["name"] for u in users} == {alice.id: "alice", bob.id: "robert"}

    bob.close()
    assert until(alice, lambda users: len(users) == 1) == [{"id": alice.id, "name": "alice"}]
    # The room lists go on as before, beside it.
    carol = connect(server.ws + "?name=carol")
    carol.join("lounge")
    while True:
        message = alice.recv()
        if message.get("event") == "userlist" and message.get("room") == "lounge" and len(message["data"]) == 2:
            break


def test_off_by_default_and_from_the_environment(start_server, connect):
    plain = start_server()
    alice = connect(plain.ws)
    connect(plain.ws)
    assert hub_list(alice, timeout=0.5) is None

    on = start_server(env={"SWITCHBOARD_GLOBAL_USERLIST": "true"})
    alice = connect(on.ws)
    assert hub_list(alice) == [{"id": alice.id, "name": None}]


def test_the_list_is_bounded_like_room_lists(start_server, connect):
    """Past 500 connections no automatic list; `users` pages through them."""
    server = start_server("--global-userlist", "--max-message-rate-per-ip", "0")
    first = connect(server.ws)
    others = [Client(server.ws) for _ in range(500)]
    try:
        # 501 connections now: the last list anyone got had at most 500.
        time.sleep(0.5)
        while (users := hub_list(first, timeout=0.3)) is not None:
            assert len(users) <= 500
        page = first.request({"event": "users"})["data"]
        assert len(page) == 500
        rest = first.request({"event": "users", "data": {"after": page[-1]["id"]}}, ack=2)["data"]
        assert len(rest) == 1
    finally:
        for client in others:
            client.close()
