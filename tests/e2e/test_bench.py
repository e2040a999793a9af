"""`switchboard bench` against `switchboard serve`: the load generator's
accounting is right (every delivery counted once, none lost, the close
handshakes clean), whatever the speed. Timings are not asserted."""

from __future__ import annotations

import json
import subprocess

from serverproc import BINARY

TIMEOUT = 60


def bench(*args: str) -> dict:
    """Runs `switchboard bench ARGS` and returns its JSON line."""
    done = subprocess.run(
        [str(BINARY), "bench", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def fanout(start_server, *args: str) -> dict:
    """`bench fanout ARGS` through the hub of a fresh server."""
    server = start_server("--max-message-rate", "0", "--max-byte-rate", "0")
    url = f"ws://127.0.0.1:{server.port}/ws"
    return bench("fanout", "--protocol", "hub", "--url", url, "--sources", "127.0.0.1", *args)


def test_fanout_counts_every_delivery_once(start_server):
    result = fanout(
        start_server,
        "--subscribers", "20",
        "--messages", "300",
        "--window", "16",
        "--size", "200",
        "--duration", "5",
    )
    assert result["subscribers_reached"] == 20, result
    assert result["messages"] == 300, result
    assert result["expected"] == 300 * 20, result
    assert result["delivered"] == result["expected"], result
    assert result["lost"] == 0, result
    assert result["errors"] == 0, result
    assert result["latency_us"]["count"] == 300 * 20, result


def test_fanout_at_a_rate_delivers_what_it_published(start_server):
    result = fanout(start_server, "--subscribers", "10", "--rate", "200", "--duration", "1")
    assert result["messages"] == 200, result
    assert result["delivered"] == 200 * 10 == result["expected"], result
    assert result["errors"] == 0, result
