#!/usr/bin/env python3
"""A WebSocket server on 127.0.0.1, built on Python `websockets`, that shows a
client what arrived with its handshake.

Usage: inspect_server.py [PORT]   (0 or nothing: any free port)

Prints `listening on 127.0.0.1:PORT` once it accepts connections. On `/close`
it closes every connection right after the handshake (code 1000). On any other
path it first sends one text message, the JSON object
`{"path", "headers": {lowercase name: value}, "subprotocol"}`, where
`subprotocol` is the one it agreed to (it knows `chat.v1` and `chat.v2`; a
client offering neither is served without one), then echoes every message
back. Serves until killed.
"""

import asyncio
import json
import logging
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

SUBPROTOCOLS = ["chat.v1", "chat.v2"]


def select_subprotocol(connection, offered):
    """The first offered subprotocol it knows, or none (not a refusal)."""
    return next((protocol for protocol in offered if protocol in SUBPROTOCOLS), None)


async def handle(ws):
    request = ws.request
    if request.path == "/close":
        await ws.close(1000, "closing at once")
        return
    headers = {name.lower(): value for name, value in request.headers.raw_items()}
    report = {"path": request.path, "headers": headers, "subprotocol": ws.subprotocol}
    try:
        await ws.send(json.dumps(report, sort_keys=True))
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(port):
    async with serve(
        handle,
        "127.0.0.1",
        port,
        select_subprotocol=select_subprotocol,
        ping_interval=None,
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{bound}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)
    try:
        asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    except KeyboardInterrupt:
        pass
