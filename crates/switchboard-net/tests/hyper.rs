//! Upgrading through a hyper 1.x server (the seeds' `listen(httpServer)`):
//! hyper routes `/ws` to [`switchboard_net::upgrade::upgrade`], our client
//! connects through it, and requests that are not upgrades get the error
//! response it returns.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::{has_header, status_line, within, KEY, WAIT};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchboard_net::{connect_with, CloseCode, Config, ConnectOptions, Message, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Body = Full<Bytes>;

/// `/ws` upgrades and echoes; everything else is 404.
async fn route(
    mut request: Request<Incoming>,
    config: Arc<Config>,
) -> Result<Response<Body>, Infallible> {
    if request.uri().path() != "/ws" {
        let mut response = Response::new(Body::from("not found\n"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    match switchboard_net::upgrade::upgrade(&mut request, &config) {
        Ok((response, pending)) => {
            tokio::spawn(async move {
                if let Ok(socket) = pending.wait().await {
                    echo(socket).await;
                }
            });
            Ok(response.map(|()| Body::default()))
        }
        Err(refusal) => Ok(refusal.map(Body::from)),
    }
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        if socket.send(message).await.is_err() {
            break;
        }
    }
}

/// A hyper HTTP/1.1 server on a fresh 127.0.0.1 port.
async fn hyper_server(config: Config) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Arc::new(config);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let config = config.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| route(request, config.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// Sends `request` and reads the response head and its `Content-Length`
/// body (hyper keeps the connection open afterwards).
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    within(WAIT, "hyper's response", async {
        let mut response = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&response).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= length {
                    return text;
                }
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "hyper closed before a full response: {text}");
            response.extend_from_slice(&chunk[..n]);
        }
    })
    .await
}

#[tokio::test]
async fn our_client_echoes_through_hyper() {
    let mut config = Config::default();
    config.protocols(["chat"]);
    let addr = hyper_server(config).await;
    let options = ConnectOptions::default().protocol("chat");
    let (mut socket, response) = within(
        WAIT,
        "connect",
        connect_with(&format!("ws://{addr}/ws"), options),
    )
    .await
    .unwrap();
    assert_eq!(response.protocol.as_deref(), Some("chat"));
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 253) as u8).collect();
    for message in [
        Message::text("through hyper"),
        Message::binary(big),
        Message::text(""),
    ] {
        socket.send(message.clone()).await.unwrap();
        let echoed = within(WAIT, "echo", socket.recv()).await.unwrap().unwrap();
        assert_eq!(echoed, message);
    }
    let info = within(WAIT, "close", socket.close(CloseCode::NORMAL, "done"))
        .await
        .unwrap();
    assert!(info.is_clean(), "{info:?}");
}

#[tokio::test]
async fn requests_that_are_not_upgrades_get_the_error_response() {
    let addr = hyper_server(Config::default()).await;
    let plain = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let response = exchange(addr, plain).await;
    let status = status_line(&response);
    assert!(
        status == "HTTP/1.1 400 Bad Request" || status == "HTTP/1.1 426 Upgrade Required",
        "{response}"
    );
    assert!(
        response.to_ascii_lowercase().contains("upgrade"),
        "{response}"
    );

    let upgrade = |method: &str, version: &str| {
        format!(
            "{method} /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
        )
    };
    let response = exchange(addr, &upgrade("GET", "8")).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 426 Upgrade Required",
        "{response}"
    );
    assert!(
        has_header(&response, "Sec-WebSocket-Version", "13"),
        "{response}"
    );

    let response = exchange(addr, &upgrade("POST", "13")).await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 405 Method Not Allowed",
        "{response}"
    );

    let response = exchange(addr, "GET /elsewhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert_eq!(
        status_line(&response),
        "HTTP/1.1 404 Not Found",
        "{response}"
    );
}

#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_reaches_the_socket() {
    let addr = hyper_server(Config::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut bytes = common::upgrade_request(addr, "/ws").into_bytes();
    bytes.extend(common::masked_frame(0x81, b"early"));
    stream.write_all(&bytes).await.unwrap();
    let expected = b"\x81\x05early";
    let response = within(WAIT, "101 and the echo", async {
        let mut response = Vec::new();
        let mut chunk = [0u8; 1024];
        while !response.ends_with(expected) {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&response));
            response.extend_from_slice(&chunk[..n]);
        }
        response
    })
    .await;
    assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
}
