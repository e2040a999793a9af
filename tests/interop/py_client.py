#!/usr/bin/env python3
"""Interop battery of Python `websockets` as a client against an echo server.

Usage: py_client.py URL [--deflate]

Each check opens its own connection, so one failure does not hide the rest,
and prints `ok - NAME` or `not ok - NAME: DETAIL`. Exits 1 if any check failed.
The server must echo text as text and binary as binary, and answer a close
with the client's own code and reason.

With --deflate every connection offers permessage-deflate (the library's
default offer) and fails its check unless the server's response accepted it;
more checks send messages above and below the server's compression threshold
(128 bytes by default), alone and mixed on one connection.
"""

import argparse
import asyncio
import contextlib
import hashlib
import sys

from websockets.asyncio.client import connect

CHECK_TIMEOUT = 20
TOTAL_TIMEOUT = 30
BIG = 16 * 1024 * 1024
UNICODE = "héllo wörld — ünïcödé: 日本語, Ελληνικά, emoji 🎉🚀"
THRESHOLD = 128
WORDS = ["hello", "lobby", "deploy", "coffee", "switchboard", "message", "latency",
         "room", "tonight", "build", "green", "review"]

# "deflate" with --deflate: offer permessage-deflate and insist on it.
COMPRESSION = None


def expect(condition, detail):
    if not condition:
        raise AssertionError(detail)


def describe(message):
    if isinstance(message, str):
        return f"text of {len(message.encode())}"
    return f"binary of {len(message)}"


def accepted_extensions(ws):
    return ws.response.headers.get_all("Sec-WebSocket-Extensions")


@contextlib.asynccontextmanager
async def open_ws(url, **kwargs):
    """A connection, compressed with --deflate; the server must agree."""
    async with connect(url, compression=COMPRESSION, **kwargs) as ws:
        accepted = accepted_extensions(ws)
        negotiated = any(v.strip().startswith("permessage-deflate") for v in accepted)
        expect(negotiated == (COMPRESSION is not None),
               f"permessage-deflate offered: {COMPRESSION is not None}, accepted: {accepted}")
        yield ws


def chat_json(seed, length):
    """A JSON chat message of exactly `length` bytes."""
    words = []
    i = seed
    while len(" ".join(words)) < length:
        words.append(WORDS[i * 7 % len(WORDS)])
        i += 1
    head = f'{{"event":"chat","room":"lobby","from":"u{seed}","data":{{"text":"'
    return (head + " ".join(words))[: max(length - 3, len(head))] + '"}}'


async def echo_roundtrip(url, message):
    async with open_ws(url, max_size=None) as ws:
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
    async with open_ws(url) as ws:
        await ws.send(fragments)
        reply = await ws.recv()
    expect(reply == "".join(fragments), f"got {reply!r}")


async def check_ping_pong(url):
    payload = b"ping-payload-\x00\xff"
    async with open_ws(url, ping_interval=None) as ws:
        pong = await ws.ping(payload)
        try:
            await asyncio.wait_for(pong, CHECK_TIMEOUT / 2)
        except TimeoutError:
            raise AssertionError(f"no pong carrying {payload!r}") from None


async def check_close_code(url):
    async with open_ws(url) as ws:
        await ws.close(4000, "bye")
        expect(ws.close_code == 4000, f"peer closed with code {ws.close_code}")
        expect(ws.close_reason == "bye", f"peer closed with reason {ws.close_reason!r}")


async def check_negotiated(url):
    async with open_ws(url) as ws:
        print(f"# Sec-WebSocket-Extensions: {', '.join(accepted_extensions(ws))}", flush=True)


async def check_above_threshold(url):
    message = chat_json(1, 4096)
    expect(len(message) > THRESHOLD, "message not above the threshold")
    await echo_roundtrip(url, message)


async def check_below_threshold(url):
    message = chat_json(2, 60)
    expect(len(message) < THRESHOLD, "message not below the threshold")
    await echo_roundtrip(url, message)


async def check_mixed(url):
    """Alternately above and below the threshold, text and binary, some
    empty, on one connection: compressed and plain messages interleave both
    ways."""
    async with open_ws(url) as ws:
        for i in range(40):
            text = "" if i % 10 == 5 else chat_json(i, 300 + 97 * i if i % 2 == 0 else 20 + i)
            message = text.encode() if i % 4 == 3 else text
            await ws.send(message)
            reply = await ws.recv()
            expect(reply == message, f"message {i} ({describe(message)}) came back as {describe(reply)}")


DEFLATE_CHECKS = [
    ("permessage-deflate negotiated", check_negotiated),
    ("compressed text above the threshold", check_above_threshold),
    ("text below the threshold", check_below_threshold),
    ("40 messages above and below the threshold on one connection", check_mixed),
]

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
    checks = CHECKS + (DEFLATE_CHECKS if COMPRESSION else [])
    return [await run_check(name, check, url) for name, check in checks]


def main():
    global COMPRESSION
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    args = parser.parse_args()
    url = args.url
    COMPRESSION = "deflate" if args.deflate else None
    try:
        results = asyncio.run(asyncio.wait_for(run_all(url), TOTAL_TIMEOUT))
    except TimeoutError:
        print(f"not ok - battery: did not finish within {TOTAL_TIMEOUT}s")
        sys.exit(1)
    print(f"py_client: {sum(results)} of {len(results)} checks passed against {url}")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
