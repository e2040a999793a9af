"""The ZeroMQ and OSC bridges of `switchboard serve`, against real peers:
pyzmq (libzmq) and python-osc, with WebSocket clients on the hub's side.

Every port is a free loopback port; every server, socket and child process is
closed when its test ends.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import zmq
from pythonosc import osc_message, osc_packet
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import ThreadingOSCUDPServer

from hubclient import Client
from httpcalls import http, metrics
from serverproc import BINARY, ROOT, free_port

TIMEOUT = 5.0


# ---- helpers ------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tcp(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


def udp(port: int) -> str:
    return f"127.0.0.1:{port}"


def series(name: str, kind: str, endpoint: str) -> str:
    return f'switchboard_bridge_{name}_total{{bridge="{kind}",endpoint="{endpoint}"}}'


def wait_until(what: str, check: Callable[[], Any], timeout: float = TIMEOUT, every: float = 0.02):
    """Polls `check` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(every)


def subscribe(client: Client, pattern: str) -> Client:
    reply = client.request({"event": "subscribe", "data": {"pattern": pattern}}, ack=f"sub-{pattern}")
    assert "error" not in reply, reply
    return client


def address(client: Client, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next address message the client receives (user lists and, for a
    subscriber of `/**`, the bridges' own events skipped)."""
    while True:
        message = client.next(timeout=timeout)
        assert "path" in message, message
        if not message["path"].startswith("/switchboard/"):
            return message


def publish(client: Client, path: str, values: list) -> None:
    client.send({"path": path, "values": values})


def osc_dgram(path: str, *args: Any, types: list | None = None) -> bytes:
    builder = OscMessageBuilder(path)
    for index, arg in enumerate(args):
        builder.add_arg(arg, types[index] if types else None)
    return builder.build().dgram


def send_udp(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", port))


def kinds(values: list) -> list[str]:
    """The Python type names of values (bool is not int here)."""
    return [type(value).__name__ for value in values]


@pytest.fixture
def zctx():
    """A ZeroMQ context whose sockets are closed without lingering."""
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def zsocket(context: zmq.Context, kind: int, endpoint: str, *, bind: bool = False) -> zmq.Socket:
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))
    sock.setsockopt(zmq.SNDTIMEO, int(TIMEOUT * 1000))
    if kind == zmq.SUB:
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    (sock.bind if bind else sock.connect)(endpoint)
    return sock


def zmq_next(sock: zmq.Socket, skip: str = "/warm") -> list[bytes]:
    """The next message whose JSON path does not start with `skip`."""
    while True:
        frames = sock.recv_multipart()
        if not json.loads(frames[-1])["path"].startswith(skip):
            return frames


def warm_up(client: Client, path: str, *done: Callable[[], bool]) -> None:
    """Publishes `path` until every `done` holds: ZeroMQ peers connect in the
    background, and a PUSH without a peer drops what it is given."""
    deadline = time.monotonic() + TIMEOUT
    while not all(check() for check in done):
        assert time.monotonic() < deadline, "the ZeroMQ peers did not connect"
        publish(client, path, [0])
        time.sleep(0.05)


def received(sock: zmq.Socket) -> Callable[[], bool]:
    return lambda: sock.poll(0) != 0


class OscServer:
    """A python-osc UDP server that records what it receives."""

    def __init__(self):
        dispatcher = Dispatcher()
        self.messages: queue.Queue = queue.Queue()
        dispatcher.set_default_handler(lambda path, *args: self.messages.put((path, list(args))))
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def next(self, timeout: float = TIMEOUT) -> tuple[str, list]:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def osc_server():
    server = OscServer()
    yield server
    server.close()


# ---- ZeroMQ --------------------------------------------------------------------------


def test_zmq_push_and_pub_carry_hub_messages(start_server, connect, zctx):
    """pyzmq PULL and SUB get what a WebSocket client publishes, as JSON
    `{path, values}` (PUB: `[path, json]`); a pattern filters an output."""
    everything, published, sensors = free_port(), free_port(), free_port()
    server = start_server(
        "--zmq-push", tcp(everything),
        "--zmq-pub", tcp(published),
        "--zmq-push", f"{tcp(sensors)}=/sensors/hall/*",
    )
    pull = zsocket(zctx, zmq.PULL, tcp(everything))
    sub = zctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVTIMEO, int(TIMEOUT * 1000))
    sub.setsockopt(zmq.SUBSCRIBE, b"/sensors/")  # a prefix of the topic frame
    sub.connect(tcp(published))
    filtered = zsocket(zctx, zmq.PULL, tcp(sensors))
    client = connect(server.ws)
    warm_up(client, "/sensors/hall/warm", received(pull), received(sub), received(filtered))

    values = [1, 0.5, "hall", True, None, [1, 2], {"k": "v"}]
    publish(client, "/lights/1", [1])
    publish(client, "/sensors/hall/motion", values)

    first = json.loads(zmq_next(pull, "/sensors/hall/warm")[0])
    assert first == {"path": "/lights/1", "values": [1]}
    frames = pull.recv_multipart()
    assert len(frames) == 1
    motion = json.loads(frames[0])
    assert motion == {"path": "/sensors/hall/motion", "values": values}
    assert kinds(motion["values"])[:5] == ["int", "float", "str", "bool", "NoneType"]

    topic, body = zmq_next(sub, "/sensors/hall/warm")
    assert topic == b"/sensors/hall/motion"
    assert json.loads(body) == {"path": "/sensors/hall/motion", "values": values}

    # /lights/1 was not for the filtered output: the motion message is next.
    assert json.loads(zmq_next(filtered, "/sensors/hall/warm")[0])["path"] == "/sensors/hall/motion"
    samples = metrics(server)
    assert samples[series("send_errors", "zmq_push", tcp(everything))] == 0
    assert samples[series("messages_out", "zmq_pub", tcp(published))] >= 2


def test_zmq_pull_and_sub_publish_into_the_hub(start_server, connect, zctx):
    """What pyzmq PUSHes to our PULL, or PUBlishes to our SUB, reaches the
    WebSocket clients subscribed to its address, and only them."""
    pull_port, pub_port = free_port(), free_port()
    publisher = zsocket(zctx, zmq.PUB, tcp(pub_port), bind=True)
    server = start_server("--zmq-pull", tcp(pull_port), "--zmq-sub", tcp(pub_port))
    client = subscribe(connect(server.ws), "/from/**")
    bystander = subscribe(connect(server.ws), "/elsewhere/**")

    pusher = zsocket(zctx, zmq.PUSH, tcp(pull_port))
    values = [1, 2.5, "s", False, None, [1, [2]], {"k": 1}]
    pusher.send_json({"path": "/from/push", "values": values})
    message = address(client)
    assert message == {"path": "/from/push", "values": values}
    assert kinds(message["values"])[:5] == ["int", "float", "str", "bool", "NoneType"]
    # IS2's own shape, `value` for `values`.
    pusher.send_json({"path": "/from/is2", "value": [3]})
    assert address(client) == {"path": "/from/is2", "values": [3]}

    # A SUB connects in the background and joins late: warm up first.
    def warm():
        publisher.send_multipart([b"/from/pub", json.dumps({"path": "/from/warm", "values": []}).encode()])
        try:
            return address(client, timeout=0.05)
        except TimeoutError:
            return None

    wait_until("the SUB to connect", warm)
    publisher.send_json({"path": "/from/pub", "values": [0.25]})  # one frame, no topic
    while (message := address(client))["path"] == "/from/warm":
        pass
    assert message == {"path": "/from/pub", "values": [0.25]}

    assert bystander.silent() == []
    samples = metrics(server)
    assert samples[series("messages_in", "zmq_pull", tcp(pull_port))] == 2
    assert samples[series("malformed", "zmq_sub", tcp(pub_port))] == 0


# ---- OSC --------------------------------------------------------------------------------


def test_osc_messages_and_bundles_arrive_typed(start_server, connect):
    """python-osc messages and (nested) bundles become `{path, values}` with
    JSON types that follow the OSC type tags."""
    port = free_udp_port()
    server = start_server("--osc-listen", udp(port))
    client = subscribe(connect(server.ws), "/osc/**")

    send_udp(port, osc_dgram("/osc/in", 42, 0.25, 0.1, "hi", b"\x00\xff\x07", True, False, None, 2**40))
    message = address(client)
    assert message == {
        "path": "/osc/in",
        "values": [42, 0.25, 0.1, "hi", [0, 255, 7], True, False, None, 2**40],
    }
    assert kinds(message["values"]) == ["int", "float", "float", "str", "list", "bool", "bool", "NoneType", "int"]

    # A float64 is exact; a float32 2.0 is still a number with a fraction
    # part in JSON (2.0, not 2); an OSC array is an array.
    send_udp(port, osc_dgram("/osc/typed", 0.1, 2.0, [1, "x"], types=["d", "f", None]))
    typed = address(client)
    assert typed["values"] == [0.1, 2.0, [1, "x"]]
    assert kinds(typed["values"]) == ["float", "float", "list"]

    inner = OscBundleBuilder(IMMEDIATELY)
    inner.add_content(OscMessageBuilder("/osc/b/2").build())
    bundle = OscBundleBuilder(IMMEDIATELY)
    first = OscMessageBuilder("/osc/b/1")
    first.add_arg(1)
    bundle.add_content(first.build())
    bundle.add_content(inner.build())
    last = OscMessageBuilder("/osc/b/3")
    last.add_arg("three")
    bundle.add_content(last.build())
    send_udp(port, bundle.build().dgram)
    assert [address(client) for _ in range(3)] == [
        {"path": "/osc/b/1", "values": [1]},
        {"path": "/osc/b/2", "values": []},
        {"path": "/osc/b/3", "values": ["three"]},
    ]
    wait_until(
        "the counters",
        lambda: metrics(server)[series("messages_in", "osc_listen", udp(port))] == 5,
    )


def test_hub_messages_reach_a_python_osc_server(start_server, connect, osc_server):
    """What a WebSocket client publishes reaches a python-osc server as OSC,
    with integers as i/h, other numbers as f, T/F, N and arrays."""
    target = udp(osc_server.port)
    server = start_server("--osc-send", f"{target}=/out/**")
    client = connect(server.ws)
    publish(client, "/elsewhere", [1])
    publish(client, "/out/x", [7, 2.5, "s", True, False, None, 3_000_000_000, [1, 2]])
    publish(client, "/out/y", [])
    path, args = osc_server.next()
    assert (path, args) == ("/out/x", [7, 2.5, "s", True, False, None, 3_000_000_000, [1, 2]])
    assert kinds(args) == ["int", "float", "str", "bool", "bool", "NoneType", "int", "list"]
    assert osc_server.next() == ("/out/y", [])
    with pytest.raises(queue.Empty):
        osc_server.next(timeout=0.3)
    samples = metrics(server)
    assert samples[series("messages_out", "osc_send", target)] == 2
    assert samples[series("send_errors", "osc_send", target)] == 0


# ---- bad input ---------------------------------------------------------------------------


def nested_bundles(depth: int) -> bytes:
    packet = osc_dgram("/deep")
    for _ in range(depth):
        packet = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + len(packet).to_bytes(4, "big") + packet
    return packet


def test_bad_input_is_counted_and_harmless(start_server, connect, zctx):
    """Malformed OSC packets and non-JSON ZeroMQ frames are counted in
    /metrics; the next valid message still flows and nothing else changes."""
    osc_port, pull_port = free_udp_port(), free_port()
    server = start_server("--osc-listen", udp(osc_port), "--zmq-pull", tcp(pull_port))
    client = subscribe(connect(server.ws), "/**")

    bad_osc = [
        b"",  # empty
        b"hello",  # neither an address nor a bundle
        b"/a\x00\x00,i\x00\x00",  # an int32 promised, none given
        b"/a\x00\x00,x\x00\x00",  # an unknown type tag
        b"#bundle\x00\x00",  # a bundle cut short
        nested_bundles(40),  # nested too deep
        osc_dgram("/a/*", 1),  # a pattern, not an address
        osc_dgram("/a b", 1),  # a space in the address
    ]
    send_udp(osc_port, *bad_osc)
    pusher = zsocket(zctx, zmq.PUSH, tcp(pull_port))
    bad_zmq = [
        [b"not json"],
        [b"\xff\xfe"],
        [b"[1, 2]"],
        [b'{"values": [1]}'],
        [b'{"path": "no/slash", "values": []}'],
        [b"topic", b"{nope"],
    ]
    for frames in bad_zmq:
        pusher.send_multipart(frames)
    send_udp(osc_port, osc_dgram("/ok/osc", 1))
    pusher.send_json({"path": "/ok/zmq", "values": [2]})

    arrived = sorted((address(client) for _ in range(2)), key=lambda m: m["path"])
    assert arrived == [{"path": "/ok/osc", "values": [1]}, {"path": "/ok/zmq", "values": [2]}]
    assert client.silent() == []

    def counted():
        samples = metrics(server)
        return (
            samples[series("malformed", "osc_listen", udp(osc_port))],
            samples[series("messages_in", "osc_listen", udp(osc_port))],
            samples[series("malformed", "zmq_pull", tcp(pull_port))],
            samples[series("messages_in", "zmq_pull", tcp(pull_port))],
        )

    wait_until("the counters", lambda: counted() == (len(bad_osc), 1, len(bad_zmq), 1))
    assert http("GET", server.http + "/healthz").json()["status"] == "ok"
    late = subscribe(connect(server.ws), "/ok/**")
    send_udp(osc_port, osc_dgram("/ok/again", "still"))
    assert address(late) == {"path": "/ok/again", "values": ["still"]}
    assert "malformed input ignored" in server.log()


# ---- loops, configuration, shutdown ----------------------------------------------------


def test_messages_do_not_loop_back_out(start_server, connect):
    """A bridge's output pointed at its own input: the message comes back in
    once and is not sent out again."""
    port = free_udp_port()
    server = start_server("--osc-listen", udp(port), "--osc-send", udp(port))
    watcher = subscribe(connect(server.ws), "/loop/**")
    publish(connect(server.ws), "/loop/osc", [1])
    assert address(watcher) == {"path": "/loop/osc", "values": [1]}  # from the client
    assert address(watcher) == {"path": "/loop/osc", "values": [1]}  # back through OSC
    assert watcher.silent(0.5) == []
    samples = metrics(server)
    assert samples[series("messages_out", "osc_send", udp(port))] == 1
    assert samples[series("messages_in", "osc_listen", udp(port))] == 1


def test_zmq_messages_do_not_loop_back_out(start_server, connect):
    port = free_port()
    server = start_server("--zmq-pub", tcp(port), "--zmq-sub", tcp(port))
    watcher = subscribe(connect(server.ws), "/loop/**")
    publisher = connect(server.ws)
    sub_in = series("messages_in", "zmq_sub", tcp(port))
    warm_up(publisher, "/loop/warm", lambda: metrics(server)[sub_in] > 0)
    time.sleep(0.2)
    watcher.drain()
    before = metrics(server)
    publish(publisher, "/loop/zmq", ["x"])
    assert address(watcher) == {"path": "/loop/zmq", "values": ["x"]}
    assert address(watcher) == {"path": "/loop/zmq", "values": ["x"]}
    assert watcher.silent(0.5) == []
    after = metrics(server)
    out = series("messages_out", "zmq_pub", tcp(port))
    assert after[out] - before[out] == 1
    assert after[sub_in] - before[sub_in] == 1


def test_bridges_from_the_config_file_and_flags(start_server, connect, tmp_path, osc_server):
    listen = free_udp_port()
    config = tmp_path / "serve.toml"
    config.write_text(
        "[bridge]\n"
        f'osc_listen = ["{udp(listen)}"]\n'
        "[[bridge.osc_send]]\n"
        f'endpoint = "{udp(osc_server.port)}"\n'
        'pattern = "/cfg/**"\n'
    )
    server = start_server("--config", str(config))
    client = subscribe(connect(server.ws), "/in/**")
    send_udp(listen, osc_dgram("/in/cfg", 1))
    assert address(client) == {"path": "/in/cfg", "values": [1]}
    publish(client, "/nope", [0])
    publish(client, "/cfg/a", [1])
    assert osc_server.next() == ("/cfg/a", [1])
    server.stop()

    # A flag replaces the file's list of its kind: now everything is sent.
    server = start_server("--config", str(config), "--osc-send", udp(osc_server.port))
    publish(connect(server.ws), "/nope", [0])
    assert osc_server.next() == ("/nope", [0])


def test_bridges_are_off_by_default(server):
    assert not [name for name in metrics(server) if "bridge" in name]
    assert "bridge" not in server.log()


@pytest.mark.parametrize(
    "flags, complaint",
    [
        (["--zmq-pull", "tcp://127.0.0.1:1=/a/**"], "outputs only"),
        (["--zmq-push", "127.0.0.1:5"], "tcp://HOST:PORT"),
        (["--osc-send", "127.0.0.1"], "HOST:PORT"),
        (["--osc-send", "127.0.0.1:9=sensors"], "starts with `/`"),
    ],
)
def test_bad_bridge_settings_are_errors(flags, complaint):
    result = subprocess.run(
        [str(BINARY), "serve", "--port", "0", *flags],
        capture_output=True, text=True, timeout=10,
    )
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_a_taken_port_stops_startup_and_shutdown_frees_ports(start_server):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = subprocess.run(
            [str(BINARY), "serve", "--port", "0", "--zmq-pull", tcp(busy)],
            capture_output=True, text=True, timeout=10,
        )
        assert result.returncode != 0
        assert "cannot bind" in result.stderr, result.stderr

    zmq_port, osc_port = free_port(), free_udp_port()
    server = start_server("--zmq-push", tcp(zmq_port), "--osc-listen", udp(osc_port))
    assert f"bridge zmq_push {tcp(zmq_port)}" in server.log()
    assert server.stop() == 0
    with socket.socket() as again:
        again.bind(("127.0.0.1", zmq_port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", osc_port))


# ---- the README's demo ---------------------------------------------------------------------


def readme_osc_sender() -> str:
    """The python-osc sender of README.md's "Bridges: a two-minute demo"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Bridges: a two-minute demo", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    sender = next(block for block in blocks if "SimpleUDPClient" in block)
    return sender


@pytest.mark.skipif(
    not (Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists() and shutil.which("node")),
    reason="needs node and /usr/bin/chromium (scripts/setup installs them)",
)
def test_readme_demo_moves_a_value_on_the_page(start_server):
    """The README's demo, literally: its OSC sender loop moves the value that
    /demo shows in headless Chromium."""
    port = free_udp_port()
    server = start_server("--osc-listen", udp(port))
    shot = ROOT / "artifacts" / "bridges" / "demo.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page = subprocess.Popen(
        ["node", str(ROOT / "tests" / "e2e" / "demo_page.mjs"), server.http + "/demo", "/slider/1", str(shot)],
        stdout=subprocess.PIPE, text=True,
    )
    sender = None
    try:
        assert page.stdout.readline().strip() == "READY"
        script = readme_osc_sender().replace("57120", str(port)).replace("python3 -c", "exec python3 -c")
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        sender = subprocess.Popen(["bash", "-c", script], env=env, stderr=subprocess.PIPE)
        output = page.stdout.read()
        assert page.wait(30) == 0, output
        assert output.startswith("OK"), output
    finally:
        for process in (sender, page):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(5)
