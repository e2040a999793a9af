"""`switchboard serve` as a child process on a free loopback port.

The server is started with `--port 0` (unless the caller gives a port) and
the port it bound is read from the line it prints on stderr. Its stderr goes
to a log file, shown when a test fails. `stop()` sends SIGTERM, waits, and
kills by PID if it has to; use it in a `finally` (or the pytest fixtures).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SWITCHBOARD_BIN", ROOT / "target" / "release" / "switchboard"))
# `http://` by default, `https://` with --tls-cert.
LISTENING = re.compile(r"listening on (https?)://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0


def wait_for(predicate, timeout: float = 5.0, what: str = "condition"):
    """Polls `predicate` until it returns something true (which is returned);
    fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One `switchboard serve` process."""

    def __init__(self, *args: str, port: int | None = 0, env: dict[str, str] | None = None):
        """`args` are flags of `serve`; `port=None` leaves the port to them
        (or to a `--config` file or the environment); `env` adds variables."""
        if not BINARY.exists():
            raise RuntimeError(
                f"{BINARY} is missing: run `cargo build --release --bin switchboard` first"
            )
        self.args = list(args) if port is None else ["--port", str(port), *args]
        self.extra_env = env or {}
        self.log_path = Path(tempfile.mkstemp(prefix="switchboard-e2e-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.secure = False

    # ---- life ---------------------------------------------------------------

    def start(self) -> "Server":
        env = dict(os.environ)
        env = {k: v for k, v in env.items() if not k.startswith("SWITCHBOARD_")}
        env.pop("RUST_LOG", None)
        env.update(self.extra_env)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(BINARY), "serve", "--host", "127.0.0.1", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log())
            if match:
                self.secure = match.group(1) == "https"
                self.port = int(match.group(2))
                return self
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"switchboard serve exited with {self.process.returncode}:\n{self.log()}"
                )
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"switchboard serve did not start in {START_TIMEOUT}s:\n{self.log()}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        return process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)

    # ---- addresses and state ------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def http(self) -> str:
        """The HTTP base URL: https:// when the server speaks TLS."""
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        """The hub endpoint."""
        return f"{'wss' if self.secure else 'ws'}://127.0.0.1:{self.port}/ws"

    @property
    def echo(self) -> str:
        return f"{'wss' if self.secure else 'ws'}://127.0.0.1:{self.port}/echo"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def rss_kib(self) -> int:
        """Resident memory of the process (VmRSS), in KiB."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc/PID/status")
