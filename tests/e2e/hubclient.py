"""A hub client for the tests, on Python `websockets` (its sync API).

`Client(url)` connects and waits for `ready`; `send` takes a dict (or text),
`recv` returns the next message as a dict, decoded from JSON or MessagePack.
Every wait has a timeout, so a missing message fails the test instead of
hanging it.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import struct
import time
from collections import deque
from typing import Any

import msgpack
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

TIMEOUT = 5.0
MSGPACK = "switchboard.msgpack"


class Client:
    """One connection to the hub endpoint."""

    def __init__(
        self,
        url: str,
        *,
        msgpack: bool = False,
        headers: dict[str, str] | None = None,
        origin: str | None = None,
        max_size: int | None = 64 << 20,
        ssl_context: ssl.SSLContext | None = None,
    ):
        """`ssl_context` says whom to trust for a wss:// URL."""
        self.ws = connect(
            url,
            ssl=ssl_context,
            subprotocols=[MSGPACK] if msgpack else None,
            additional_headers=headers,
            origin=origin,
            proxy=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
            ping_interval=None,
            max_size=max_size,
            max_queue=None,
            legacy=True,  # a connection object, not a context manager
        )
        self.pending: deque[dict[str, Any]] = deque()
        self.closed: ConnectionClosed | None = None
        self.msgpack = msgpack
        ready = self.recv()
        assert ready["event"] == "ready", ready
        self.id: str = ready["data"]["id"]
        self.name: str | None = ready["data"]["name"]

    def send(self, message: dict | str | bytes) -> None:
        """Sends a dict in this client's encoding, or text/bytes as they are."""
        if isinstance(message, dict):
            if self.msgpack:
                self.ws.send(msgpack.packb(message))
            else:
                self.ws.send(json.dumps(message))
        else:
            self.ws.send(message)

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message, decoded. Raises TimeoutError if none arrives."""
        if self.pending:
            return self.pending.popleft()
        frame = self.ws.recv(timeout=timeout)
        if isinstance(frame, bytes):
            assert self.msgpack, f"binary frame on a JSON connection: {frame!r}"
            return msgpack.unpackb(frame)
        assert not self.msgpack, f"text frame on a MessagePack connection: {frame!r}"
        return json.loads(frame)

    def next(self, event: str | None = None, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message that is not a `userlist` (the next one named
        `event`, if given, skipping others)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.0, deadline - time.monotonic()))
            if event is None and message.get("event") != "userlist":
                return message
            if event is not None and message.get("event") == event:
                return message

    def request(self, message: dict, ack: Any = 1) -> dict[str, Any]:
        """Sends with an ack id and returns the ack; what arrives before it
        stays to be received."""
        self.send({**message, "ack": ack})
        deadline = time.monotonic() + TIMEOUT
        before = []
        while True:
            reply = self.recv(max(0.0, deadline - time.monotonic()))
            if reply.get("event") == "ack" and reply.get("ack") == ack:
                self.pending.extendleft(reversed(before))
                return reply
            before.append(reply)

    def join(self, room: str) -> None:
        reply = self.request({"event": "join", "room": room}, ack=f"join-{room}")
        assert "error" not in reply, reply

    def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Everything that arrives until `quiet` seconds pass without a
        message, or until the server closes (see `close_code`)."""
        messages = []
        while True:
            try:
                messages.append(self.recv(quiet))
            except TimeoutError:
                return messages
            except ConnectionClosed as closed:
                self.closed = closed
                return messages

    def silent(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """What arrived within `quiet` seconds other than user lists (should be [])."""
        return [m for m in self.drain(quiet) if m.get("event") != "userlist"]

    def close_code(self, timeout: float = TIMEOUT) -> int | None:
        """Reads until the server closes; returns the close code it sent."""
        self.pending.clear()
        if self.closed is not None:
            return self.closed.rcvd.code if self.closed.rcvd else None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        except ConnectionClosed as closed:
            self.closed = closed
            return closed.rcvd.code if closed.rcvd else None
        raise TimeoutError("the server did not close the connection")

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def upgrade_request(port: int, path: str = "/ws") -> bytes:
    """The HTTP request that opens a WebSocket on `path` (a fresh key each time)."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


ZERO_MASK = b"\0\0\0\0"


def encode_frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One client frame, masked as a client must (opcode 0x0 continues a
    message), with a random key unless one is given. The all-zero key is
    valid (RFC 6455 §5.3 asks only for a key) and leaves megabytes of
    payload as they are, without a byte-by-byte pass."""
    first = (0x80 if fin else 0) | opcode
    mask = os.urandom(4) if mask is None else mask
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    if mask == ZERO_MASK:
        return head + mask + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class RawClient:
    """A hub client on a bare socket, for what a library would not do: stop
    reading entirely (with a small receive buffer), then read later."""

    def __init__(self, port: int, path: str = "/ws", rcvbuf: int = 4096, ready: bool = True):
        """`ready=False` skips waiting for the hub's `ready` (for /echo,
        which sends none); `id` is then None."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(upgrade_request(port, path))
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))
        self.close_code: int | None = None
        self.ended = False  # the stream ended (or stalled: see timed_out)
        self.timed_out = False
        self.id: str | None = None
        if ready:
            opcode, payload = self.read_frame()
            message = json.loads(payload)
            assert message["event"] == "ready", message
            self.id = message["data"]["id"]

    def send(self, message: dict) -> None:
        """Sends a JSON text frame."""
        self.send_frame(0x1, json.dumps(message).encode())

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        """Sends one frame, masked as a client must (0x0 continues a message)."""
        self.sock.sendall(encode_frame(opcode, payload, fin))

    def _need(self, n: int) -> bool:
        while len(self.buffer) < n:
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                self.timed_out = True
                return False
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read_frame(self) -> tuple[int, bytes] | None:
        """The next frame as (opcode, payload); None at the end of the stream."""
        if not self._need(2):
            self.ended = True
            return None
        first, second = self.buffer[0], self.buffer[1]
        length, offset = second & 0x7F, 2
        if length == 126:
            if not self._need(4):
                self.ended = True
                return None
            length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif length == 127:
            if not self._need(10):
                self.ended = True
                return None
            length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
        if not self._need(offset + length):
            self.ended = True
            return None
        payload = self.buffer[offset : offset + length]
        self.buffer = self.buffer[offset + length :]
        opcode = first & 0x0F
        if opcode == 0x8:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return opcode, payload

    def read_messages(self) -> list[dict[str, Any]]:
        """Reads until the server closes, or the stream stalls for TIMEOUT
        seconds (then `timed_out` is set); returns the messages before the
        close frame."""
        messages = []
        while True:
            frame = self.read_frame()
            if frame is None or frame[0] == 0x8:
                return messages
            if frame[0] == 0x1:
                messages.append(json.loads(frame[1]))

    def close(self) -> None:
        self.sock.close()
