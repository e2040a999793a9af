#!/usr/bin/env python3
"""WebSocket echo server on 127.0.0.1, built on Python `websockets`.

Usage: py_echo_server.py PORT [--deflate]

Echoes text as text and binary as binary, unchanged and of any size; a close
frame is answered with the peer's own code and reason. permessage-deflate is
offered only with --deflate. Serves until killed.
"""

import argparse
import asyncio
import logging

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(port, deflate):
    compression = "deflate" if deflate else None
    async with serve(
        echo,
        "127.0.0.1",
        port,
        compression=compression,
        max_size=None,
        ping_interval=None,
    ) as server:
        print(f"py_echo_server listening on 127.0.0.1:{port}", flush=True)
        await server.serve_forever()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    try:
        asyncio.run(main(args.port, args.deflate))
    except KeyboardInterrupt:
        pass
