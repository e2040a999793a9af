"""Signed tokens (JWT) on /ws: each case with its documented answer.

- a valid token (HS256, RS256, ES256) from `Authorization: Bearer`, the
  cookie or `?token=` connects, with the claims' name;
- no token is 401; expired, not yet valid, a wrong signature, `alg: none`
  and an HS256 token signed with the RS256 server's public key are 403,
  with the reason in the body;
- the `rooms` and `publish` claims: a forbidden join or send is an error
  with code `forbidden` and the connection stays open;
- a token's `exp` closes the connection (`token_expired`, then 4001) within
  a second; `refresh` moves the deadline, for the same subject only.

Keys are made per module with `cryptography`; tokens with PyJWT, except
the malicious ones, which are put together by hand as an attacker would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from serverproc import BINARY

pytestmark = pytest.mark.timeout(30)

SECRET = "a-test-secret-of-at-least-32-bytes!"
COOKIE = "switchboard_token"
TOKEN_EXPIRED = 4001


# ---- keys and tokens --------------------------------------------------------------------


def pem_public(private) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def claims(lifetime: float = 60, **extra) -> dict:
    return {"exp": int(time.time() + lifetime), **extra}


def hs256(payload: dict, secret: str | bytes = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, payload: dict, sign=lambda signing_input: b"") -> str:
    """A token made by hand, signed (or not) by `sign`."""
    signing_input = (
        b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    )
    return signing_input + "." + b64url(sign(signing_input.encode()))


# ---- servers and clients ----------------------------------------------------------------


@pytest.fixture
def hs_server(start_server):
    return start_server("--jwt-secret", SECRET)


def key_server(start_server, tmp_path, private):
    path = tmp_path / "public.pem"
    path.write_bytes(pem_public(private))
    return start_server("--jwt-public-key", str(path))


def refused(url: str, **options) -> tuple[int, str]:
    """The status and body of a refused upgrade (fails if it succeeds)."""
    with pytest.raises(InvalidStatus) as refusal:
        ws_connect(url, proxy=None, open_timeout=5, **options).close()
    response = refusal.value.response
    return response.status_code, response.body.decode(errors="replace")


def with_token(server, token: str) -> str:
    return f"{server.ws}?token={token}"


# ---- connecting ---------------------------------------------------------------------------


def test_a_valid_token_by_header_cookie_or_query_connects_with_its_name(hs_server, connect):
    by_header = connect(
        hs_server.ws,
        headers={"Authorization": "Bearer " + hs256(claims(sub="u1", name="Ann"))},
    )
    by_cookie = connect(
        hs_server.ws, headers={"Cookie": f"other=1; {COOKIE}={hs256(claims(sub='u2', name='Bob'))}"}
    )
    by_query = connect(with_token(hs_server, hs256(claims(sub="u3", name="Cy"))) + "&name=ignored")
    assert (by_header.name, by_cookie.name, by_query.name) == ("Ann", "Bob", "Cy")
    users = by_header.request({"event": "users"})["data"]
    assert sorted(user["name"] for user in users) == ["Ann", "Bob", "Cy"]


def test_a_cookie_token_counts_only_from_this_sites_own_pages(hs_server, connect):
    token = hs256(claims(sub="u1"))
    cookie = {"Cookie": f"{COOKIE}={token}"}
    # A page elsewhere, opening /ws with the visitor's cookie: refused.
    status, body = refused(hs_server.ws, additional_headers=cookie, origin="http://evil.example")
    assert status == 403 and "evil.example" in body, body
    assert connect(hs_server.ws, headers=cookie, origin=f"http://127.0.0.1:{hs_server.port}").id
    # A token the page put in the header itself is not sent on its own.
    header = {"Authorization": f"Bearer {token}"}
    assert connect(hs_server.ws, headers=header, origin="http://evil.example").id


def test_no_token_is_401(hs_server):
    status, body = refused(hs_server.ws)
    assert status == 401
    assert "token is required" in body


@pytest.mark.parametrize(
    "make_token, reason",
    [
        # Made when the test runs, not when it is collected: a token made
        # a minute early would have expired.
        (lambda: hs256(claims(lifetime=-10)), "expired"),
        (lambda: hs256(claims(nbf=int(time.time()) + 60)), "not yet valid"),
        (lambda: hs256(claims(), "another-secret-of-at-least-32-bytes"), "bad signature"),
        (lambda: forged({"alg": "none", "typ": "JWT"}, claims()), "algorithm none is not accepted"),
        (lambda: hs256({"sub": "no expiry"}), "exp claim is required"),
        (lambda: "not.a.token", "malformed"),
    ],
    ids=["expired", "not-yet-valid", "wrong-signature", "alg-none", "no-exp", "garbage"],
)
def test_a_bad_token_is_403_with_the_reason(hs_server, make_token, reason):
    token = make_token()
    for options in ({}, {"additional_headers": {"Authorization": f"Bearer {token}"}}):
        url = with_token(hs_server, token) if not options else hs_server.ws
        status, body = refused(url, **options)
        assert status == 403
        assert reason in body, body


def test_rs256_accepts_its_keys_tokens_and_refuses_hs256_made_with_the_public_key(
    start_server, tmp_path, rsa_key, connect
):
    server = key_server(start_server, tmp_path, rsa_key)
    good = jwt.encode(claims(name="Rae"), rsa_key, algorithm="RS256")
    assert connect(with_token(server, good)).name == "Rae"
    # The classic confusion: the public key (which anyone has) as an HMAC secret.
    public = pem_public(rsa_key)
    confused = forged(
        {"alg": "HS256", "typ": "JWT"},
        claims(name="Mallory"),
        lambda signing_input: hmac.new(public, signing_input, hashlib.sha256).digest(),
    )
    status, body = refused(with_token(server, confused))
    assert status == 403
    assert "algorithm HS256 is not accepted" in body
    none = forged({"alg": "none"}, claims())
    assert refused(with_token(server, none))[0] == 403
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = jwt.encode(claims(), other, algorithm="RS256")
    assert refused(with_token(server, wrong)) == (403, "invalid token: bad signature\n")


def test_es256_accepts_its_keys_tokens(start_server, tmp_path, ec_key, rsa_key, connect):
    server = key_server(start_server, tmp_path, ec_key)
    good = jwt.encode(claims(name="Eve"), ec_key, algorithm="ES256")
    assert connect(with_token(server, good)).name == "Eve"
    rs = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert refused(with_token(server, rs))[0] == 403


def test_audience_and_issuer_when_configured_are_required(start_server, connect):
    server = start_server("--jwt-secret", SECRET, "--jwt-audience", "sb", "--jwt-issuer", "auth")
    good = hs256(claims(aud="sb", iss="auth", name="Ann"))
    assert connect(with_token(server, good)).name == "Ann"
    for token, reason in [
        (hs256(claims(iss="auth")), "the aud claim is required"),
        (hs256(claims(aud="sb")), "the iss claim is required"),
        (hs256(claims(aud="other", iss="auth")), "wrong audience"),
        (hs256(claims(aud="sb", iss="other")), "wrong issuer"),
    ]:
        assert refused(with_token(server, token)) == (403, f"invalid token: {reason}\n")


def test_ws_token_and_jwt_together_refuse_to_start():
    result = subprocess.run(
        [str(BINARY), "serve", "--port", "0", "--ws-token", "t", "--jwt-secret", SECRET],
        capture_output=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert b"exclude each other" in result.stderr


# ---- rooms and publishing -------------------------------------------------------------------


def test_a_forbidden_join_is_an_error_and_the_connection_stays_open(hs_server, connect):
    token = hs256(claims(sub="u1", rooms=["lobby", "team-*"]))
    client = connect(with_token(hs_server, token))
    client.send({"event": "join", "room": "staff"})
    error = client.next()
    assert error["event"] == "error"
    assert error["data"]["code"] == "forbidden"
    reply = client.request({"event": "join", "room": "staff"})
    assert reply["error"]["code"] == "forbidden"
    assert client.request({"event": "users", "room": "staff"})["error"]["code"] == "forbidden"
    client.join("lobby")
    client.join("team-red")


def test_a_forbidden_publish_is_an_error(hs_server, connect):
    token = hs256(claims(sub="u1", publish=["news"], paths=["/lights/**"]))
    sender = connect(with_token(hs_server, token))
    listener = connect(with_token(hs_server, hs256(claims(sub="u2"))))
    listener.join("chat")
    listener.join("news")
    sender.send({"event": "say", "room": "chat", "data": "hi"})
    error = sender.next()
    assert error["event"] == "error" and error["data"]["code"] == "forbidden", error
    reply = sender.request({"event": "say", "broadcast": True, "data": "all"})
    assert reply["error"]["code"] == "forbidden"
    # Joining is not limited by `publish`, and the allowed room works.
    sender.join("chat")
    reply = sender.request({"event": "say", "room": "news", "data": "ok", "echo": False})
    assert reply["data"] == {"delivered": 1}
    assert listener.next("say")["data"] == "ok"
    # Address messages: only under the `paths` patterns.
    listener.request({"event": "subscribe", "data": {"pattern": "/**"}})
    reply = sender.request({"path": "/door/open", "values": [1]})
    assert reply["error"]["code"] == "forbidden"
    assert sender.request({"path": "/lights/hall", "values": [1]})["data"] == {"delivered": 1}
    assert listener.next()["path"] == "/lights/hall"
    assert listener.silent() == []


# ---- expiry and refresh ---------------------------------------------------------------------


def wait_for_close(client) -> tuple[list[dict], int | None, float]:
    """What arrived until the server closed, its close code, and when."""
    messages = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages += client.drain(quiet=0.05)
        if client.closed is not None:
            return messages, client.close_code(), time.time()
    raise AssertionError("the server did not close the connection")


def test_expiry_closes_the_connection_with_4001_within_a_second(hs_server, connect):
    exp = int(time.time()) + 2
    client = connect(with_token(hs_server, hs256({"exp": exp, "sub": "u1"})))
    messages, code, at = wait_for_close(client)
    assert code == TOKEN_EXPIRED
    assert client.closed.rcvd.reason == "token expired"
    assert [m["data"]["code"] for m in messages if m["event"] == "error"] == ["token_expired"]
    assert exp - 0.05 <= at <= exp + 1.0, (exp, at)


def test_refresh_moves_the_deadline_for_the_same_subject_only(hs_server, connect):
    first_exp = int(time.time()) + 2
    client = connect(with_token(hs_server, hs256({"exp": first_exp, "sub": "u1"})))
    later = int(time.time()) + 60
    reply = client.request({"event": "refresh", "data": {"token": hs256({"exp": later, "sub": "u1"})}})
    assert reply["data"] == {"expires": later, "left": []}
    for token, code in [
        (hs256(claims(sub="u2")), "subject_mismatch"),
        (hs256(claims(sub="u1"), "another-secret-of-at-least-32-bytes"), "invalid_token"),
        (hs256(claims(lifetime=-5, sub="u1")), "invalid_token"),
    ]:
        reply = client.request({"event": "refresh", "data": {"token": token}})
        assert reply["error"]["code"] == code, reply
    # Past the first token's expiry the connection still works.
    time.sleep(max(0.0, first_exp + 1.2 - time.time()))
    assert client.request({"event": "users"})["data"]
    # A refresh to an earlier deadline is kept too.
    soon = int(time.time()) + 1
    client.request({"event": "refresh", "data": {"token": hs256({"exp": soon, "sub": "u1"})}})
    _, code, at = wait_for_close(client)
    assert code == TOKEN_EXPIRED
    assert at <= soon + 1.0


def test_refresh_replaces_the_room_grants(hs_server, connect):
    client = connect(with_token(hs_server, hs256(claims(sub="u1", rooms=["a", "b"]))))
    client.join("a")
    client.join("b")
    narrower = hs256(claims(sub="u1", rooms=["b", "c"]))
    reply = client.request({"event": "refresh", "data": {"token": narrower}})
    assert reply["data"]["left"] == ["a"]
    assert client.request({"event": "join", "room": "a"})["error"]["code"] == "forbidden"
    client.join("c")


def test_refresh_without_jwt_is_unavailable(server, connect):
    client = connect(server.ws)
    reply = client.request({"event": "refresh", "data": {"token": "x"}})
    assert reply["error"]["code"] == "refresh_unavailable"
