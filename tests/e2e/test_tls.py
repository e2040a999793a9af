"""`serve --tls-cert/--tls-key`: the port speaks only TLS; the hub, /echo
and the HTTP pages work over https/wss with a CA made for the test; plain
HTTP gets no answer; a peer that never sends a ClientHello is dropped; the
certificate is reloaded on SIGHUP without dropping anyone, and a bad file
keeps the old one; SIGTERM closes TLS clients as it closes plain ones."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from certs import context, issue, peer_serial
from hubclient import Client
from serverproc import wait_for

TIMEOUT = 5.0


@pytest.fixture
def pki(tmp_path):
    return issue(tmp_path / "pki", "switchboard test CA A")


def tls_server(start_server, pki, *args):
    return start_server("--tls-cert", str(pki.cert), "--tls-key", str(pki.key), *args)


def echo(url: str, ctx: ssl.SSLContext, **options):
    return connect(url, ssl=ctx, open_timeout=TIMEOUT, close_timeout=TIMEOUT, proxy=None, **options)


def handshake(port: int, ctx: ssl.SSLContext) -> int:
    """A fresh TLS connection to `port`; the serial of the server's certificate."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
            return peer_serial(tls)


def test_wss_hub_echo_and_https_pages(start_server, pki):
    server = tls_server(start_server, pki)
    assert server.secure and "listening on https://" in server.log()
    assert f"hub wss://127.0.0.1:{server.port}/ws" in server.log()
    ctx = context(pki)

    with echo(server.echo, ctx) as ws:
        ws.send("hello over TLS")
        assert ws.recv(timeout=TIMEOUT) == "hello over TLS"
        ws.send(b"\x00" * 200_000)
        assert ws.recv(timeout=TIMEOUT) == b"\x00" * 200_000

    alice = Client(server.ws + "?name=alice", ssl_context=ctx)
    bob = Client(server.ws + "?name=bob", ssl_context=ctx)
    try:
        reply = alice.request({"event": "whisper", "to": bob.id, "data": "psst"})
        assert reply["data"] == {"delivered": 1}
        assert bob.next("whisper")["data"] == "psst"
    finally:
        alice.close()
        bob.close()

    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=TIMEOUT)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 200, response.read()
        response.read()
        conn.request("GET", "/")
        page = conn.getresponse()
        assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        conn.close()


def test_alpn_is_http_1_1(start_server, pki):
    server = tls_server(start_server, pki)
    ctx = context(pki)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"


def test_plain_http_gets_no_answer(start_server, pki):
    server = tls_server(start_server, pki)
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass
    assert not answer.startswith(b"HTTP/"), answer


def test_an_untrusted_client_fails_and_the_server_carries_on(start_server, pki, tmp_path):
    server = tls_server(start_server, pki)
    other = issue(tmp_path / "other", "some other CA")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server.port, context(other))
    assert handshake(server.port, context(pki)) == pki.serial


def test_a_silent_peer_is_dropped_after_the_handshake_timeout(start_server, pki):
    """The TLS handshake has the net config's handshake_timeout (10 s)."""
    server = tls_server(start_server, pki)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as raw:
        # Nothing sent: no ClientHello. The server closes after its timeout.
        try:
            assert raw.recv(1) == b""
        except ConnectionResetError:
            pass


def test_sighup_reloads_the_certificate_without_dropping_connections(
    start_server, pki, tmp_path
):
    server = tls_server(start_server, pki)
    old_ctx = context(pki)
    assert handshake(server.port, old_ctx) == pki.serial
    old_echo = echo(server.echo, old_ctx, legacy=True)  # a connection, not a context
    old_hub = Client(server.ws + "?name=before", ssl_context=old_ctx)
    try:
        # Cert B: a different CA (and serial), written over the same files.
        new = issue(pki.cert.parent, "switchboard test CA B")
        assert new.cert == pki.cert and new.serial != pki.serial
        os.kill(server.pid, signal.SIGHUP)
        wait_for(lambda: "reloaded the TLS certificate" in server.log(), what="the reload")

        new_ctx = context(new)
        assert handshake(server.port, new_ctx) == new.serial
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(server.port, old_ctx)
        with echo(server.echo, new_ctx) as ws:
            ws.send("new")
            assert ws.recv(timeout=TIMEOUT) == "new"

        # The connections made before still work.
        old_echo.send("still here")
        assert old_echo.recv(timeout=TIMEOUT) == "still here"
        newcomer = Client(server.ws + "?name=after", ssl_context=new_ctx)
        reply = newcomer.request({"event": "whisper", "to": old_hub.id, "data": "hi"})
        assert reply["data"] == {"delivered": 1}
        assert old_hub.next("whisper")["data"] == "hi"
        newcomer.close()
    finally:
        old_echo.close()
        old_hub.close()


def test_a_bad_file_on_sighup_keeps_the_old_certificate(start_server, pki):
    server = tls_server(start_server, pki)
    pki.cert.write_text("not a certificate\n")
    os.kill(server.pid, signal.SIGHUP)
    wait_for(lambda: "TLS reload failed" in server.log(), what="the failed reload")
    assert "keeping the previous certificate" in server.log()
    assert handshake(server.port, context(pki)) == pki.serial
    assert server.process.poll() is None


def test_tls_files_from_the_environment(start_server, pki):
    server = start_server(
        env={"SWITCHBOARD_TLS_CERT": str(pki.cert), "SWITCHBOARD_TLS_KEY": str(pki.key)}
    )
    assert server.secure
    assert handshake(server.port, context(pki)) == pki.serial


def test_tls_files_from_the_config_file(start_server, pki, tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text(f'tls_cert = "{pki.cert}"\ntls_key = "{pki.key}"\n')
    server = start_server("--config", str(config))
    assert server.secure
    assert handshake(server.port, context(pki)) == pki.serial


def test_an_unusable_certificate_stops_the_start(pki):
    from serverproc import Server

    pki.key.write_text("garbage\n")
    server = Server("--tls-cert", str(pki.cert), "--tls-key", str(pki.key))
    with pytest.raises(RuntimeError, match="key.pem"):
        server.start()
    server.stop()


def test_sigterm_sends_end_and_1001_over_tls_and_exits_0(start_server, pki):
    server = tls_server(start_server, pki, "--shutdown-timeout", "5")
    ctx = context(pki)
    hub = Client(server.ws, ssl_context=ctx)
    with echo(server.echo, ctx) as ws:
        ws.send("before")
        assert ws.recv(timeout=TIMEOUT) == "before"
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(10) == 0
        assert time.monotonic() - started < 5
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=TIMEOUT)
        assert closed.value.rcvd.code == 1001
    after = [m for m in hub.drain(2.0) if m.get("event") != "userlist"]
    assert after == [{"event": "end"}], after
    assert hub.close_code() == 1001
