"""Admission of WebSocket upgrades, and the idle timer, measured exactly.

- `--max-connections N` admits exactly N of many concurrent upgrades to /ws
  and refuses the rest with 503, burst after burst;
- SIGTERM during a burst of upgrades: every connection that got its 101 ends
  with `end` then 1001, later attempts are refused, and no 101 goes out after
  the signal (beyond a small allowance for handshakes in flight);
- `--idle-timeout` closes (1001) within 10 % after the last data message in
  either direction, on /ws and on /echo.

The bursts use raw sockets on asyncio (`hubclient.upgrade_request` and
`encode_frame`), so that every attempt's outcome is known exactly: its HTTP
status, a refused or reset TCP connection, and for a 101 each frame that
followed and when. Every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from hubclient import RawClient, encode_frame, upgrade_request
from httpcalls import http, metrics
from serverproc import wait_for

pytestmark = pytest.mark.timeout(30)

STEP_TIMEOUT = 5.0  # any one connect, response or frame


# ---- one upgrade attempt on asyncio ------------------------------------------------------


@dataclass
class Attempt:
    """What happened to one upgrade attempt. `outcome` is the HTTP status
    ("101", "503", ...) or how the attempt failed without one: "refused"
    (TCP connect refused), "reset" (reset before a response), "eof" (closed
    before a response), "timeout"."""

    n: int
    began: float = 0.0  # when its TCP connect began
    connected: bool = False  # its TCP connect succeeded
    requested: float | None = None  # when its upgrade request was written
    last_byte: bytes = b""  # of a request held back until `go`
    outcome: str = "pending"
    upgraded_at: float | None = None  # when the 101 arrived
    messages: list[Any] = field(default_factory=list)  # text messages after the 101
    close_code: int | None = None  # of the server's close frame, if one came
    ending: str | None = None  # "close", or why the stream ended without one
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next server frame (unmasked) as (opcode, payload)."""
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return head[0] & 0x0F, await reader.readexactly(length)


async def attempt_upgrade(
    attempt: Attempt, port: int, path: str = "/ws", go: asyncio.Event | None = None
) -> Attempt:
    """Connects, sends the upgrade request and reads the response head. With
    `go`, all of the request but its last byte goes out at once, and the
    caller writes the last bytes of all attempts together before it sets
    `go` (see `concurrent_upgrades`). A 101 leaves the connection open in
    `attempt`."""
    attempt.began = time.monotonic()
    try:
        attempt.reader, attempt.writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), STEP_TIMEOUT
        )
    except ConnectionRefusedError:
        attempt.outcome = "refused"
        return attempt
    except ConnectionResetError:
        attempt.outcome = "reset"
        return attempt
    except (TimeoutError, asyncio.TimeoutError):
        attempt.outcome = "timeout"
        return attempt
    request = upgrade_request(port, path)
    try:
        if go is not None:
            attempt.writer.write(request[:-1])
            await attempt.writer.drain()
            attempt.last_byte = request[-1:]
            attempt.connected = True
            await go.wait()
            if attempt.requested is None:  # connected after the others had gone
                attempt.writer.write(attempt.last_byte)
                await attempt.writer.drain()
                attempt.requested = time.monotonic()
        else:
            attempt.connected = True
            attempt.writer.write(request)
            await attempt.writer.drain()
            attempt.requested = time.monotonic()
        head = await asyncio.wait_for(attempt.reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT)
    except (ConnectionResetError, BrokenPipeError):
        attempt.outcome = "reset"
    except asyncio.IncompleteReadError:
        attempt.outcome = "eof"
    except (TimeoutError, asyncio.TimeoutError):
        attempt.outcome = "timeout"
    else:
        attempt.outcome = head.split(b" ", 2)[1].decode()
        if attempt.outcome == "101":
            attempt.upgraded_at = time.monotonic()
            return attempt
    close_writer(attempt)
    return attempt


async def read_until_closed(attempt: Attempt, timeout: float) -> None:
    """Reads an upgraded connection until the server's close frame (answered
    with the same code, as a client does) or the end of the stream; the
    frames go to `attempt.messages`, the end to `ending` and `close_code`."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            opcode, payload = await asyncio.wait_for(
                read_frame(attempt.reader), max(0.0, deadline - time.monotonic())
            )
            if opcode == 0x1:
                attempt.messages.append(json.loads(payload))
            elif opcode == 0x8:
                attempt.close_code = (
                    struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                )
                attempt.ending = "close"
                attempt.writer.write(encode_frame(0x8, payload[:2]))
                await attempt.writer.drain()
                # The server ends the TCP connection once it has our answer.
                await asyncio.wait_for(attempt.reader.read(), STEP_TIMEOUT)
                break
            elif opcode == 0x9:
                attempt.writer.write(encode_frame(0xA, payload))
            else:
                attempt.messages.append((opcode, payload))
    except asyncio.IncompleteReadError:
        attempt.ending = attempt.ending or "eof"  # 1006: no close frame
    except (ConnectionResetError, BrokenPipeError):
        attempt.ending = attempt.ending or "reset"
    except (TimeoutError, asyncio.TimeoutError):
        attempt.ending = attempt.ending or "timeout"
    finally:
        close_writer(attempt)


def close_writer(attempt: Attempt) -> None:
    if attempt.writer is not None:
        attempt.writer.close()
        attempt.writer = None


async def close_cleanly(attempt: Attempt) -> None:
    """The client's close (1000), then the server's answer and end of stream."""
    try:
        attempt.writer.write(encode_frame(0x8, struct.pack("!H", 1000)))
        await attempt.writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        close_writer(attempt)
        return
    await read_until_closed(attempt, STEP_TIMEOUT)


def wait_until_no_connections(server) -> None:
    """/healthz reports no connection (and, while /metrics has the gauge,
    no WebSocket holds an admission slot)."""

    def none_left():
        health = http("GET", server.http + "/healthz").json()
        return health["connections"] == 0 and metrics(server).get("switchboard_websockets", 0) == 0

    wait_for(none_left, timeout=10, what="0 connections on /healthz")


# ---- --max-connections under concurrent upgrades ----------------------------------------

LIMIT = 50
ATTEMPTS = 200


async def concurrent_upgrades(port: int, count: int) -> list[Attempt]:
    """`count` upgrades whose requests go out together (every TCP connection
    is open first), each held open until all have their answer; then every
    admitted connection is closed cleanly."""
    go = asyncio.Event()
    attempts = [Attempt(n) for n in range(count)]
    tasks = [asyncio.create_task(attempt_upgrade(a, port, go=go)) for a in attempts]
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline and any(
        not a.connected and a.outcome == "pending" for a in attempts
    ):
        await asyncio.sleep(0.005)
    # The last bytes in one tight loop, with no task switch between them,
    # so that the server has all the handshakes to finish at once.
    for a in attempts:
        if a.last_byte and a.writer is not None:
            a.writer.write(a.last_byte)
            a.requested = time.monotonic()
    go.set()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 2 * STEP_TIMEOUT)
    finally:
        for task in tasks:
            task.cancel()
        admitted = [a for a in attempts if a.writer is not None]
        await asyncio.wait_for(
            asyncio.gather(*(close_cleanly(a) for a in admitted), return_exceptions=True),
            2 * STEP_TIMEOUT,
        )
        for a in attempts:
            close_writer(a)
    return attempts


def test_concurrent_upgrades_are_admitted_exactly_up_to_max_connections(start_server):
    server = start_server("--max-connections", str(LIMIT))
    for run in range(3):
        attempts = asyncio.run(concurrent_upgrades(server.port, ATTEMPTS))
        outcomes = Counter(a.outcome for a in attempts)
        assert outcomes == {"101": LIMIT, "503": ATTEMPTS - LIMIT}, (
            f"run {run + 1} of 3: {dict(outcomes)} for {ATTEMPTS} concurrent upgrades "
            f"with --max-connections {LIMIT}"
        )
        wait_until_no_connections(server)


# ---- SIGTERM during a burst of upgrades -------------------------------------------------

BURST = 300  # attempts
WAVE = 10  # attempts that start together, so that handshakes are in flight at any moment
BURST_SPAN = 1.0  # seconds over which the waves start
SIGNAL_AT = 0.5  # seconds into the burst, once that wave's requests are out
LATE_101 = 0.1  # seconds after the signal a 101 may still arrive (handshakes in flight)
SHUTDOWN_TIMEOUT = 5


async def burst_with_sigterm(server) -> tuple[list[Attempt], float]:
    """Starts BURST upgrades in waves of WAVE evenly over BURST_SPAN, sends
    SIGTERM at SIGNAL_AT as soon as that wave's requests are written (its
    handshakes in flight); every admitted connection is read until it
    closes. Returns the attempts and when the signal was sent."""
    waves = BURST // WAVE
    attempts = [Attempt(n) for n in range(BURST)]
    began = time.monotonic()
    sent: list[float] = []

    async def one(attempt: Attempt) -> None:
        wave = attempt.n // WAVE
        await asyncio.sleep(max(0.0, began + wave * BURST_SPAN / waves - time.monotonic()))
        await attempt_upgrade(attempt, server.port)
        if attempt.outcome == "101":
            await read_until_closed(attempt, SHUTDOWN_TIMEOUT + STEP_TIMEOUT)

    async def terminate() -> None:
        await asyncio.sleep(max(0.0, began + SIGNAL_AT - time.monotonic()))
        first = round(SIGNAL_AT * waves / BURST_SPAN) * WAVE
        in_flight = attempts[first : first + WAVE]
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline and any(
            a.requested is None and a.outcome == "pending" for a in in_flight
        ):
            await asyncio.sleep(0)
        sent.append(time.monotonic())
        os.kill(server.pid, signal.SIGTERM)

    tasks = [asyncio.create_task(one(a)) for a in attempts]
    tasks.append(asyncio.create_task(terminate()))
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), SHUTDOWN_TIMEOUT + 2 * STEP_TIMEOUT)
    finally:
        for task in tasks:
            task.cancel()
        for a in attempts:
            close_writer(a)
    return attempts, sent[0]


def after_101(attempt: Attempt) -> str | None:
    """What is wrong with an admitted connection's end, if anything: it must
    get `end` (after any other messages, such as `ready`), then a 1001 close."""
    events = [m.get("event") if isinstance(m, dict) else m for m in attempt.messages]
    if attempt.ending != "close":
        return f"no close frame ({attempt.ending}) after {events}"
    if not events or events[-1] != "end" or attempt.messages[-1] != {"event": "end"}:
        return f"close {attempt.close_code} after {events}, not after `end`"
    if attempt.close_code != 1001:
        return f"close {attempt.close_code} after `end`, not 1001"
    return None


REFUSED = {"503", "refused", "reset", "eof"}


def test_sigterm_during_a_burst_of_upgrades(start_server):
    server = start_server("--shutdown-timeout", str(SHUTDOWN_TIMEOUT))
    attempts, signalled = asyncio.run(burst_with_sigterm(server))
    assert server.process.wait(SHUTDOWN_TIMEOUT + 5) == 0

    upgraded = [a for a in attempts if a.outcome == "101"]
    before = [a for a in upgraded if a.upgraded_at < signalled]
    after = [a for a in attempts if a.began >= signalled]
    earlier = Counter(a.outcome for a in attempts if a.began < signalled)
    summary = (
        f"{len(upgraded)} upgraded ({len(before)} before the signal), outcomes of the "
        f"attempts begun before it {dict(earlier)}, after it {dict(Counter(a.outcome for a in after))}"
    )
    # The burst straddles the signal: the test would prove nothing otherwise.
    assert before and after, summary

    wrong = {a.n: a.outcome for a in attempts if a.outcome != "101" and a.outcome not in REFUSED}
    assert not wrong, f"attempts neither admitted nor refused: {wrong}; {summary}"
    # Shutting down is no excuse for refusing what was asked well before it.
    early = {
        a.n: a.outcome
        for a in attempts
        if a.outcome != "101" and (a.requested or a.began) < signalled - LATE_101
    }
    assert not early, f"upgrades requested well before SIGTERM not admitted: {early}; {summary}"

    bad_ends = {a.n: problem for a in upgraded if (problem := after_101(a))}
    assert not bad_ends, (
        f"{len(bad_ends)} of {len(upgraded)} admitted connections did not end with "
        f"`end` then 1001: {dict(list(bad_ends.items())[:10])}; {summary}"
    )

    late = sorted(
        round(a.upgraded_at - signalled, 4)
        for a in upgraded
        if a.upgraded_at > signalled + LATE_101
    )
    assert not late, f"101s arrived this long (s) after SIGTERM: {late}; {summary}"


# ---- the idle timer ------------------------------------------------------------------

IDLE = 2.0  # --idle-timeout
SLACK = 0.1  # the close may come this fraction late (of the time since opening)


def close_after(client: RawClient, opened: float, until: float) -> tuple[float, int | None]:
    """Reads until the server's close frame; returns when it arrived (seconds
    after `opened`) and its code. Fails if none comes by `until` (seconds
    after `opened`)."""
    while True:
        left = opened + until - time.monotonic()
        assert left > 0, f"no close frame within {until} s"
        client.sock.settimeout(left)
        frame = client.read_frame()
        if frame is None:
            assert not client.timed_out, f"no close frame within {until} s"
            ended = time.monotonic() - opened
            raise AssertionError(f"the connection ended without a close frame at {ended:.3f} s")
        if frame[0] == 0x8:
            return time.monotonic() - opened, client.close_code


def assert_closes_idle(client: RawClient, opened: float, last_data: float) -> None:
    """The close is 1001 and comes IDLE after `last_data` (seconds after
    `opened`), at most 10 % late: 2.0–2.2 s, or 3.0–3.3 s after data at 1 s."""
    low = last_data + IDLE
    high = round(low * (1 + SLACK), 3)
    # Waits past `high`, so that a late close is measured, not just missed.
    at, code = close_after(client, opened, high + IDLE)
    assert code == 1001
    assert low <= at <= high, f"closed {at:.3f} s after opening, expected {low}–{high:.1f} s"


@pytest.fixture
def idle_server(start_server):
    return start_server("--idle-timeout", str(int(IDLE)))


# `opened` is taken just before the TCP connect: the server cannot start its
# idle clock any earlier, so a close before `opened + IDLE` is a real error,
# and the handshake adds well under a millisecond on loopback to the upper bound.


def test_idle_timeout_is_exact_on_ws(idle_server):
    opened = time.monotonic()
    client = RawClient(idle_server.port)
    assert_closes_idle(client, opened, 0.0)
    client.close()


def test_idle_timeout_is_exact_on_echo(idle_server):
    opened = time.monotonic()
    client = RawClient(idle_server.port, path="/echo", ready=False)
    assert_closes_idle(client, opened, 0.0)
    client.close()


def test_data_from_the_server_restarts_the_idle_clock_on_ws(idle_server):
    """The client sends nothing; one message published to it at t = 1 s."""
    opened = time.monotonic()
    client = RawClient(idle_server.port)
    time.sleep(max(0.0, opened + 1.0 - time.monotonic()))
    response = http("POST", idle_server.http + "/api/publish", {"to": client.id, "event": "tick"})
    assert response.json() == {"delivered": 1}
    opcode, payload = client.read_frame()
    assert opcode == 0x1 and json.loads(payload)["event"] == "tick"
    assert_closes_idle(client, opened, 1.0)
    client.close()


def test_data_from_the_client_restarts_the_idle_clock_on_ws(idle_server):
    """The client sends one message at t = 1 s."""
    opened = time.monotonic()
    client = RawClient(idle_server.port)
    time.sleep(max(0.0, opened + 1.0 - time.monotonic()))
    client.send({"event": "chat", "room": "idle", "data": "one message"})
    assert_closes_idle(client, opened, 1.0)
    client.close()
