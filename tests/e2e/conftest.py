"""Fixtures of the end-to-end tests: `switchboard serve` processes and clients.

Nothing is built here: the tests run `target/release/switchboard` (or
$SWITCHBOARD_BIN), which `scripts/test` builds in its `build` stage.
"""

from __future__ import annotations

from typing import Callable

import pytest

from hubclient import Client
from serverproc import BINARY, Server


def pytest_sessionstart(session):
    if not BINARY.exists():
        pytest.exit(
            f"{BINARY} is missing: run `cargo build --release --bin switchboard` "
            "(the `build` stage of scripts/test) first",
            returncode=1,
        )


@pytest.fixture
def start_server(request) -> Callable[..., Server]:
    """Starts `switchboard serve` with the given flags; every server started
    is stopped (SIGTERM, then SIGKILL by PID) when the test ends, and its log
    is printed if the test failed. A server that panicked fails the test."""
    servers: list[Server] = []

    def start(*args: str, port: int | None = 0, env: dict[str, str] | None = None) -> Server:
        server = Server(*args, port=port, env=env)
        servers.append(server)
        return server.start()

    yield start
    failed = getattr(request.node, "failed_call", False)
    panicked = []
    for server in servers:
        server.stop()
        log = server.log()
        if failed or "panicked" in log:
            print(f"--- log of switchboard serve (pid {server.process and server.process.pid})")
            print(log)
        if "panicked" in log:
            panicked.append(server.pid)
        server.log_path.unlink(missing_ok=True)
    if panicked:
        pytest.fail(f"switchboard serve panicked (pid {panicked}); its log is above")


@pytest.fixture
def server(start_server) -> Server:
    """A server with default settings."""
    return start_server()


@pytest.fixture
def connect(request) -> Callable[..., Client]:
    """Opens hub clients that are closed when the test ends."""
    clients: list[Client] = []

    def open_client(url: str, **options) -> Client:
        client = Client(url, **options)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        try:
            client.close()
        except Exception:
            pass


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:
        item.failed_call = True
    return report
