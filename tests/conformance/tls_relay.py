"""A byte relay from plain TCP to TLS, so that kosoku (whose runner has no
TLS) can drive our server's wss:// endpoint.

Each connection accepted on the plain port gets its own TLS connection to
the target, verified against the test CA; bytes are copied both ways
unchanged, and when either side closes the other is closed, so the order
of closes that Autobahn judges (behaviorClose) is kept. The relay does not
look at the WebSocket bytes: the frames kosoku sends are what our server
decodes from TLS records.

`Relay(target_port, ca_path)` runs in a thread; `.port` is the plain port,
`.stop()` ends it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading

CHUNK = 1 << 16


class Relay:
    def __init__(self, target_port: int, ca_path: str, host: str = "localhost"):
        self.target_port, self.host = target_port, host
        self.context = ssl.create_default_context(cafile=ca_path)
        self.context.set_alpn_protocols(["http/1.1"])
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the TLS relay did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _relay(self, plain_reader, plain_writer) -> None:
        self.connections += 1
        plain_writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls_reader, tls_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port, ssl=self.context, server_hostname=self.host
            )
        except OSError:
            plain_writer.close()
            return
        tls_writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.wait(
            [
                asyncio.ensure_future(self._copy(plain_reader, tls_writer)),
                asyncio.ensure_future(self._copy(tls_reader, plain_writer)),
            ],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for writer in (plain_writer, tls_writer):
            writer.close()

    @staticmethod
    async def _copy(reader, writer) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                writer.write(chunk)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass

    def stop(self) -> None:
        def shutdown():
            self._server.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(shutdown)
        self._thread.join(10)
