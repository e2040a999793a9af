"""`redis-server` as a child process on a free loopback port, for the
cluster tests and benchmark.

Never the machine's own Redis: each `RedisServer` runs its own process on a
port picked here (`--save '' --appendonly no`: nothing is written to disk),
and is stopped by PID. `kill()` and `start()` again bring it back on the
same port, empty, as a crashed and restarted Redis would be. With
`aof=True` it keeps an append-only file fsynced on every write (what room
history's guarantees assume, docs/CLUSTERING.md), so it comes back with
its data.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from serverproc import free_port

START_TIMEOUT = 10.0


def redis_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """One `redis-server` process."""

    def __init__(self, port: int | None = None, aof: bool = False):
        self.port = port or free_port()
        self.aof = aof
        self.process: subprocess.Popen | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="switchboard-redis-"))
        self.log_path = self.dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> "RedisServer":
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("redis-server is missing (scripts/setup installs it)")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "yes" if self.aof else "no",
                    "--appendfsync", "always",
                    "--dir", str(self.dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log()}")
            try:
                if self.command("PING") == "PONG":
                    return self
            except OSError:
                pass
            except RuntimeError as error:
                # LOADING: it is reading its append-only file back.
                if not str(error).startswith("LOADING"):
                    raise
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not start in {START_TIMEOUT}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL, as a crash: clients see their connections reset."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(self, *args: str, timeout: float = 2.0):
        """One command over a fresh connection; the reply, decoded simply
        (strings, integers, lists, None)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            request = f"*{len(args)}\r\n" + "".join(
                f"${len(a.encode())}\r\n{a}\r\n" for a in args
            )
            sock.sendall(request.encode())
            reader = sock.makefile("rb")
            return _read_reply(reader)


def _read_reply(reader):
    line = reader.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if rest == "-1":
            return None
        data = reader.read(int(rest) + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        if rest == "-1":
            return None
        return [_read_reply(reader) for _ in range(int(rest))]
    raise RuntimeError(f"unexpected reply {line!r}")
