//! The opening handshake over real TCP: malformed requests get the exact
//! status RFC 6455 §4.2.1 calls for, plain HTTP reaches the handler, handlers
//! can refuse, subprotocols follow the server's preference (or a handler's
//! choice from the offers), and a client sees the status of a refusal.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{echo, has_header, http_exchange, serve, status_line, within, KEY, WAIT};
use switchboard_net::{
    connect, connect_with, AcceptAll, Accepted, Config, ConnectOptions, Decision, Handler,
    HttpResponse, Message,
};
use switchboard_proto::handshake::Request;
use switchboard_proto::HandshakeError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A request head built from header lines, with the request line first.
fn head(request_line: &str, headers: &[&str]) -> String {
    let mut text = format!("{request_line}\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text
}

const HOST: &str = "Host: 127.0.0.1";
const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const VERSION: &str = "Sec-WebSocket-Version: 13";

fn key_header() -> String {
    format!("Sec-WebSocket-Key: {KEY}")
}

/// A valid upgrade request.
fn valid() -> String {
    valid_except("", "")
}

/// A valid upgrade with `replace` swapped for `with` (an empty `with`
/// removes the header).
fn valid_except(replace: &str, with: &str) -> String {
    let key = key_header();
    let lines: Vec<&str> = [HOST, UPGRADE, CONNECTION, key.as_str(), VERSION]
        .into_iter()
        .filter_map(|line| match line == replace {
            true if with.is_empty() => None,
            true => Some(with),
            false => Some(line),
        })
        .collect();
    head("GET /chat HTTP/1.1", &lines)
}

#[tokio::test]
async fn malformed_handshakes_get_their_exact_status() {
    let addr = serve(Config::default(), AcceptAll, echo).await;
    let many_headers: Vec<String> = (0..100).map(|i| format!("X-Filler-{i}: v")).collect();
    let mut too_many: Vec<&str> = vec![HOST, UPGRADE, CONNECTION, VERSION];
    too_many.extend(many_headers.iter().map(String::as_str));
    let big_header = format!("X-Big: {}", "a".repeat(20_000));
    let key = key_header();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing Host",
            valid_except(HOST, ""),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "missing Sec-WebSocket-Key",
            valid_except(&key, ""),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "key not base64",
            valid_except(&key, "Sec-WebSocket-Key: not base64!"),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "key of 5 bytes",
            valid_except(&key, "Sec-WebSocket-Key: c2hvcnQ="),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "Connection without Upgrade",
            valid_except(CONNECTION, "Connection: keep-alive"),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "HTTP/1.0",
            valid().replace("HTTP/1.1", "HTTP/1.0"),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "not HTTP",
            "\u{1}\u{2}garbage\r\n\r\n".to_owned(),
            "HTTP/1.1 400 Bad Request",
        ),
        (
            "POST",
            valid().replace("GET ", "POST "),
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (
            "version 8",
            valid_except(VERSION, "Sec-WebSocket-Version: 8"),
            "HTTP/1.1 426 Upgrade Required",
        ),
        (
            "missing version",
            valid_except(VERSION, ""),
            "HTTP/1.1 426 Upgrade Required",
        ),
        (
            "too many headers",
            head("GET / HTTP/1.1", &too_many),
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
        (
            "head over 16 KiB",
            head("GET / HTTP/1.1", &[HOST, big_header.as_str()]),
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
    ];
    for (name, request, expected) in &cases {
        let response = http_exchange(addr, request.as_bytes()).await;
        assert_eq!(status_line(&response), *expected, "{name}: {response}");
        if expected.contains(" 426 ") {
            assert!(
                has_header(&response, "Sec-WebSocket-Version", "13"),
                "{name}: a 426 names the version (RFC 6455 §4.4): {response}"
            );
        }
        if expected.contains(" 405 ") {
            assert!(has_header(&response, "Allow", "GET"), "{name}: {response}");
        }
    }
}

#[tokio::test]
async fn a_head_not_sent_in_time_gets_408() {
    let mut config = Config::default();
    config.handshake_timeout(Duration::from_millis(200));
    let addr = serve(config, AcceptAll, echo).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // Half a head, then silence: a slow-loris client.
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let response = common::read_to_close(&mut stream).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 408 Request Timeout",
        "{response}"
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
}

/// Answers `/hello` over plain HTTP, echoing the query and the request body.
struct Greeter;

impl Handler for Greeter {
    type Admission = ();

    async fn upgrade(&self, _: &Request, preferred: Option<&str>) -> Decision {
        Decision::accept(preferred, ())
    }

    async fn http(&self, request: &Request, body: Bytes) -> HttpResponse {
        if request.path() != "/hello" {
            return HttpResponse::text(404, "not here\n");
        }
        let text = format!(
            "hello {} ({} body bytes)\n",
            request.query().unwrap_or("anonymous"),
            body.len()
        );
        HttpResponse::text(200, text).with_header("X-Served-By", "greeter")
    }
}

#[tokio::test]
async fn plain_http_reaches_the_handler() {
    let addr = serve(Config::default(), Greeter, echo).await;
    let response = http_exchange(addr, head("GET /hello?alice HTTP/1.1", &[HOST]).as_bytes()).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert!(
        has_header(&response, "X-Served-By", "greeter"),
        "{response}"
    );
    assert!(
        response.ends_with("\r\n\r\nhello alice (0 body bytes)\n"),
        "{response}"
    );

    let post = "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nabcde";
    let response = http_exchange(addr, post.as_bytes()).await;
    assert_eq!(status_line(&response), "HTTP/1.1 200 OK", "{response}");
    assert!(response.ends_with("(5 body bytes)\n"), "{response}");

    let response = http_exchange(addr, head("GET /elsewhere HTTP/1.1", &[HOST]).as_bytes()).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 404 Not Found",
        "{response}"
    );

    // The handler answers plain HTTP only; upgrades still work.
    let (mut socket, _) = within(WAIT, "connect", connect(&format!("ws://{addr}/hello")))
        .await
        .unwrap();
    socket
        .send(Message::text("still a websocket"))
        .await
        .unwrap();
    let echoed = within(WAIT, "echo", socket.recv()).await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("still a websocket"));
}

#[tokio::test]
async fn the_default_handler_answers_plain_http_with_426() {
    let addr = serve(Config::default(), AcceptAll, echo).await;
    let response = http_exchange(addr, head("GET / HTTP/1.1", &[HOST]).as_bytes()).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 426 Upgrade Required",
        "{response}"
    );
    assert!(
        has_header(&response, "Sec-WebSocket-Version", "13"),
        "{response}"
    );
    assert!(has_header(&response, "Upgrade", "websocket"), "{response}");
}

/// Lets in only `Authorization: Bearer good`: no credentials is 401, wrong
/// ones 403.
struct Gatekeeper;

impl Handler for Gatekeeper {
    type Admission = ();

    async fn upgrade(&self, request: &Request, preferred: Option<&str>) -> Decision {
        match request.header("authorization") {
            None => Decision::Reject(HandshakeError::new(401, "credentials required")),
            Some("Bearer good") => Decision::Accept {
                protocol: preferred.map(str::to_owned),
                headers: vec![("X-Welcome".into(), "yes".into())],
                admission: (),
            },
            Some(_) => Decision::Reject(HandshakeError::new(403, "credentials refused")),
        }
    }
}

#[tokio::test]
async fn a_handler_refuses_with_401_or_403() {
    let addr = serve(Config::default(), Gatekeeper, echo).await;
    let anonymous = valid();
    let response = http_exchange(addr, anonymous.as_bytes()).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 401 Unauthorized",
        "{response}"
    );
    assert!(response.ends_with("credentials required\n"), "{response}");

    let key = key_header();
    let wrong = head(
        "GET /chat HTTP/1.1",
        &[
            HOST,
            UPGRADE,
            CONNECTION,
            &key,
            VERSION,
            "Authorization: Bearer bad",
        ],
    );
    let response = http_exchange(addr, wrong.as_bytes()).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 403 Forbidden",
        "{response}"
    );

    let url = format!("ws://{addr}/");
    let error = within(WAIT, "connect", connect(&url)).await.unwrap_err();
    assert_eq!(
        error.handshake_error().map(HandshakeError::status),
        Some(401),
        "{error}"
    );
    // The client keeps the server's explanation from the response body.
    let reason = error.handshake_error().map(HandshakeError::reason);
    assert_eq!(
        reason,
        Some("server answered 401 Unauthorized: credentials required"),
        "{error}"
    );

    let options = ConnectOptions::default().header("Authorization", "Bearer good");
    let (mut socket, response) = within(WAIT, "connect", connect_with(&url, options))
        .await
        .unwrap();
    let welcome = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("x-welcome"));
    assert_eq!(welcome.map(|h| h.value.as_slice()), Some(&b"yes"[..]));
    socket.send(Message::text("in")).await.unwrap();
    let echoed = within(WAIT, "echo", socket.recv()).await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("in"));
}

/// Serves with `supported` subprotocols and reports what each accepted
/// connection agreed on.
async fn protocol_server(
    supported: &[&str],
) -> (SocketAddr, mpsc::UnboundedReceiver<Option<String>>) {
    let mut config = Config::default();
    config.protocols(supported.iter().copied());
    let (agreed, agreed_rx) = mpsc::unbounded_channel();
    let addr = serve(config, AcceptAll, move |accepted: Accepted| {
        let agreed = agreed.clone();
        async move {
            let _ = agreed.send(accepted.protocol.clone());
            echo(accepted).await;
        }
    })
    .await;
    (addr, agreed_rx)
}

#[tokio::test]
async fn the_server_picks_the_subprotocol_by_its_own_preference() {
    let (addr, mut agreed) = protocol_server(&["superchat", "chat"]).await;
    let url = format!("ws://{addr}/");
    let cases: &[(&[&str], Option<&str>)] = &[
        // The client prefers chat; the server's preference wins.
        (&["chat", "superchat"], Some("superchat")),
        (&["chat"], Some("chat")),
        (&["mqtt", "chat"], Some("chat")),
        (&["mqtt"], None),
        (&[], None),
    ];
    for (offered, expected) in cases {
        let options = offered
            .iter()
            .fold(ConnectOptions::default(), |options, p| options.protocol(*p));
        let (_socket, response) = within(WAIT, "connect", connect_with(&url, options))
            .await
            .unwrap();
        assert_eq!(
            response.protocol.as_deref(),
            *expected,
            "offered {offered:?}"
        );
        let server_side = within(WAIT, "server agreed", agreed.recv()).await.unwrap();
        assert_eq!(server_side.as_deref(), *expected, "offered {offered:?}");
    }
}

/// Chooses per path, as `serve` does per endpoint: `/chat` answers the
/// first of its own list the client offers, `/any` the first one offered.
struct PerPath;

impl Handler for PerPath {
    type Admission = ();

    async fn upgrade(&self, request: &Request, _preferred: Option<&str>) -> Decision {
        let offered = request.protocols();
        let chosen = match request.path() {
            "/chat" => ["protocolOne", "chat"]
                .into_iter()
                .find(|ours| offered.iter().any(|theirs| theirs == ours))
                .map(str::to_owned),
            _ => offered.first().cloned(),
        };
        Decision::accept(chosen.as_deref(), ())
    }
}

#[tokio::test]
async fn a_handler_chooses_from_the_offers_by_path() {
    let addr = serve(Config::default(), PerPath, echo).await;
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("/chat", &["chat", "protocolOne"], Some("protocolOne")),
        ("/chat", &["mqtt", "chat"], Some("chat")),
        // No match: accepted without a subprotocol (RFC 6455 §4.2.2).
        ("/chat", &["mqtt"], None),
        ("/chat", &[], None),
        ("/any", &["mqtt", "chat"], Some("mqtt")),
        ("/any", &[], None),
    ];
    for (path, offered, expected) in cases {
        let options = offered
            .iter()
            .fold(ConnectOptions::default(), |options, p| options.protocol(*p));
        let url = format!("ws://{addr}{path}");
        let (mut socket, response) = within(WAIT, "connect", connect_with(&url, options))
            .await
            .unwrap();
        assert_eq!(
            response.protocol.as_deref(),
            *expected,
            "{path} {offered:?}"
        );
        socket.send(Message::text("works")).await.unwrap();
        let echoed = within(WAIT, "echo", socket.recv()).await.unwrap().unwrap();
        assert_eq!(echoed, Message::text("works"));
    }
    // Offers in several headers count as one list, in order.
    let request = head(
        "GET /any HTTP/1.1",
        &[
            HOST,
            UPGRADE,
            CONNECTION,
            &key_header(),
            VERSION,
            "Sec-WebSocket-Protocol: first, second",
            "Sec-WebSocket-Protocol: third",
        ],
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let read = within(WAIT, "the 101", stream.read(&mut byte)).await;
        assert_eq!(read.unwrap(), 1, "closed early: {response:?}");
        response.push(byte[0]);
    }
    let response = String::from_utf8_lossy(&response);
    assert!(status_line(&response).contains("101"), "{response}");
    assert!(
        has_header(&response, "Sec-WebSocket-Protocol", "first"),
        "{response}"
    );
}

/// Refuses everyone: the server is full.
struct Overloaded;

impl Handler for Overloaded {
    type Admission = ();

    async fn upgrade(&self, _: &Request, _: Option<&str>) -> Decision {
        Decision::Reject(HandshakeError::new(503, "try again later"))
    }
}

#[tokio::test]
async fn a_client_sees_the_status_of_a_refusal() {
    let addr = serve(Config::default(), Overloaded, echo).await;
    let error = within(WAIT, "connect", connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    assert!(error.is_handshake(), "{error}");
    let handshake = error.handshake_error().unwrap();
    assert_eq!(handshake.status(), 503, "{error}");
    assert!(handshake.reason().contains("503"), "{error}");
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_accepted() {
    let addr = serve(Config::default(), AcceptAll, echo).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for byte in common::upgrade_request(addr, "/").bytes() {
        stream.write_all(&[byte]).await.unwrap();
        tokio::task::yield_now().await;
    }
    let response = within(WAIT, "101", async {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    })
    .await;
    assert!(
        response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{response}"
    );
    assert!(
        has_header(
            &response,
            "Sec-WebSocket-Accept",
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        ),
        "{response}"
    );
}

/// A server that reads one request head and answers with `respond(key)`,
/// then keeps the connection open without a word more.
async fn scripted_server(respond: fn(&str) -> Vec<u8>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let key = head
                    .lines()
                    .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                if stream.write_all(&respond(&key)).await.is_err() {
                    return;
                }
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn switching(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_frame_sent_with_the_101_is_not_lost() {
    let addr = scripted_server(|key| {
        let mut bytes = switching(&switchboard_proto::handshake::accept_key(key));
        bytes.extend_from_slice(b"\x81\x05hello");
        bytes
    })
    .await;
    let (mut socket, _) = within(WAIT, "connect", connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    let first = within(WAIT, "first message", socket.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, Message::text("hello"));
}

#[tokio::test]
async fn a_client_refuses_a_wrong_accept_key() {
    let addr = scripted_server(|_| switching("bm90IHRoZSByaWdodCBrZXk=")).await;
    let error = within(WAIT, "connect", connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    assert!(error.is_handshake(), "{error}");
    assert_eq!(error.handshake_error().unwrap().status(), 0, "{error}");
}

#[tokio::test]
async fn a_client_gives_up_on_a_silent_server_after_handshake_timeout() {
    let addr = scripted_server(|_| Vec::new()).await;
    let mut config = Config::default();
    config.handshake_timeout(Duration::from_millis(200));
    let options = ConnectOptions::default().config(config);
    let started = std::time::Instant::now();
    let error = within(
        WAIT,
        "connect",
        connect_with(&format!("ws://{addr}/"), options),
    )
    .await
    .unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Answers every request with a body larger than any socket buffer.
struct Flood;

impl Handler for Flood {
    type Admission = ();

    async fn upgrade(&self, _: &Request, _: Option<&str>) -> Decision {
        Decision::Reject(HandshakeError::new(404, "no WebSocket here"))
    }

    async fn http(&self, _: &Request, _: Bytes) -> HttpResponse {
        HttpResponse::new(200, "application/octet-stream", vec![0u8; 32 << 20])
    }
}

#[tokio::test]
async fn a_response_the_client_does_not_read_is_given_up_after_handshake_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config::default();
    config.handshake_timeout(Duration::from_millis(300));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut client = socket.connect(addr).await.unwrap();
    // Asks for the page, then never reads it.
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let started = tokio::time::Instant::now();
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        switchboard_net::accept(stream, &config, &Flood),
    )
    .await
    .expect("the server still waits on a client that does not read");
    let Err(error) = answered else {
        panic!("a timeout, not an answer");
    };
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(client);
}

/// Decides only after `wait`, the way a handler that asks a backend does.
struct Deliberate {
    wait: Duration,
}

impl Handler for Deliberate {
    type Admission = ();

    async fn upgrade(&self, _: &Request, preferred: Option<&str>) -> Decision {
        tokio::time::sleep(self.wait).await;
        Decision::accept(preferred, ())
    }
}

#[tokio::test]
async fn a_decision_may_wait_for_an_answer() {
    let wait = Duration::from_millis(200);
    let addr = serve(Config::default(), Deliberate { wait }, echo).await;
    let started = std::time::Instant::now();
    let (mut socket, _) = within(WAIT, "connect", connect(&format!("ws://{addr}/")))
        .await
        .unwrap();
    assert!(started.elapsed() >= wait);
    socket.send(Message::text("after a while")).await.unwrap();
    let echoed = within(WAIT, "echo", socket.recv()).await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("after a while"));
}

#[tokio::test]
async fn a_decision_that_outlasts_the_handshake_timeout_is_answered_408() {
    let mut config = Config::default();
    config.handshake_timeout(Duration::from_millis(300));
    let addr = serve(config, Deliberate { wait: WAIT * 2 }, echo).await;
    let response = within(WAIT, "408", http_exchange(addr, valid().as_bytes())).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 408 Request Timeout",
        "{response}"
    );
}
