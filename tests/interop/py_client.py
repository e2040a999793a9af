#!/usr/bin/env python3
"""Interop battery of Python `websockets` as a client against an echo server.

Usage: py_client.py URL

Each check opens its own connection, so one failure does not hide the rest,
and prints `ok - NAME` or `not ok - NAME: DETAIL`. Exits 1 if any check failed.
The server must echo text as text and binary as binary, and answer a close
with the client's own code and reason.
"""

import asyncio
import hashlib
import sys

from websockets.asyncio.client import connect

CHECK_TIMEOUT = 20
TOTAL_TIMEOUT = 30
BIG = 16 * 1024 * 1024
UNICODE = "héllo wörld — ünïcödé: 日本語, Ελληνικά, emoji 🎉🚀"


def expect(condition, detail):
    if not condition:
        raise AssertionError(detail)


def describe(message):
    if isinstance(message, str):
        return f"text of {len(message.encode())}"
    return f"binary of {len(message)}"


async def echo_roundtrip(url, message):
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(message)
        reply = await ws.recv()
    expect(type(reply) is type(message), f"sent {describe(message)}, got {describe(reply)}")
    expect(reply == message, f"{describe(message)} came back changed")


async def check_text(url):
    await echo_roundtrip(url, "hello, switchboard")


async def check_binary(url):
    await echo_roundtrip(url, bytes(range(256)))


async def check_empty_text(url):
    await echo_roundtrip(url, "")


async def check_empty_binary(url):
    await echo_roundtrip(url, b"")


async def check_big_binary(url):
    message = hashlib.sha256(b"switchboard").digest() * (BIG // 32)
    await echo_roundtrip(url, message)


async def check_unicode(url):
    await echo_roundtrip(url, UNICODE)


async def check_fragmented(url):
    fragments = ["frag", "ment", "ed — ", "日本"]
    async with connect(url, compression=None) as ws:
        await ws.send(fragments)
        reply = await ws.recv()
    expect(reply == "".join(fragments), f"got {reply!r}")


async def check_ping_pong(url):
    payload = b"ping-payload-\x00\xff"
    async with connect(url, compression=None, ping_interval=None) as ws:
        pong = await ws.ping(payload)
        try:
            await asyncio.wait_for(pong, CHECK_TIMEOUT / 2)
        except TimeoutError:
            raise AssertionError(f"no pong carrying {payload!r}") from None


async def check_close_code(url):
    async with connect(url, compression=None) as ws:
        await ws.close(4000, "bye")
        expect(ws.close_code == 4000, f"peer closed with code {ws.close_code}")
        expect(ws.close_reason == "bye", f"peer closed with reason {ws.close_reason!r}")


CHECKS = [
    ("text", check_text),
    ("binary", check_binary),
    ("empty text", check_empty_text),
    ("empty binary", check_empty_binary),
    ("16 MiB binary", check_big_binary),
    ("fragmented text", check_fragmented),
    ("ping with payload gets matching pong", check_ping_pong),
    ("unicode text", check_unicode),
    ("close 4000 'bye' echoed", check_close_code),
]


def failure_detail(error):
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT}s"
    if isinstance(error, AssertionError):
        return str(error)
    return f"{type(error).__name__}: {error}"


async def run_check(name, check, url):
    try:
        await asyncio.wait_for(check(url), CHECK_TIMEOUT)
    except Exception as error:
        print(f"not ok - {name}: {failure_detail(error)}", flush=True)
        return False
    print(f"ok - {name}", flush=True)
    return True


async def run_all(url):
    return [await run_check(name, check, url) for name, check in CHECKS]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    url = sys.argv[1]
    try:
        results = asyncio.run(asyncio.wait_for(run_all(url), TOTAL_TIMEOUT))
    except TimeoutError:
        print(f"not ok - battery: did not finish within {TOTAL_TIMEOUT}s")
        sys.exit(1)
    print(f"py_client: {sum(results)} of {len(results)} checks passed against {url}")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
