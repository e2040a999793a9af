"""A TCP proxy whose connections a test can cut, as a network failure
would: the client's socket is closed under it, with no close frame.

Each accepted connection goes to the first upstream port (of those
`upstreams()` names, tried in a random order) that accepts it; bytes are
pumped both ways by two threads per connection.
"""

from __future__ import annotations

import random
import socket
import threading
from typing import Callable

from serverproc import free_port


class CuttableProxy:
    def __init__(self, upstreams: Callable[[], list[int]]):
        self.upstreams = upstreams
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.listener.settimeout(0.2)
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = self._connect_upstream()
            if upstream is None:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def _connect_upstream(self) -> socket.socket | None:
        ports = list(self.upstreams())
        random.shuffle(ports)
        for port in ports:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=1.0)
            except OSError:
                continue
        return None

    def cut(self) -> int:
        """Closes every connection under way (a reset to both ends);
        returns how many."""
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()
                except OSError:
                    pass
        return len(pairs)

    def close(self) -> None:
        self.stopped.set()
        self.cut()
        self.listener.close()
        self.thread.join(2)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
