//! Engine.IO's HTTP long-polling transport. A session's hub connection is
//! an ordinary one, running on the server end of an in-memory WebSocket
//! (a bounded pipe); the session keeps the client end. A GET reads what
//! the hub wrote (waiting for the first packet), a POST writes what the
//! client sent. So the hub, its limits and its slow-consumer policy see
//! one more connection; nothing here knows about events.
//!
//! Bounds: the pipe holds [`PIPE_BYTES`] in each direction, and behind it
//! the hub's own queue limits apply (a client that stops polling is a slow
//! consumer, then misses its pings and is closed); a POST body holds at
//! most `maxPayload` bytes; a GET answers with about `maxPayload` bytes
//! at most; sessions are at most `max_connections + max_handshakes`, and
//! until its CONNECT a session holds a handshake's place (`max_handshakes`,
//! `max_handshakes_per_ip`).
//! The session table's lock is held for a lookup, an insert or a removal.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use switchboard_hub::ConnId;
use switchboard_net::{Accepted, BodyStream, CloseCode, HttpResponse, Message, Role, WebSocket};
use switchboard_proto::handshake::Request;
use tokio::sync::Notify;

use super::super::app::App;
use super::super::routes::Router;
use super::query::EngineError;
use super::sessions::Session;

/// Bytes the in-memory WebSocket buffers each way.
pub const PIPE_BYTES: usize = 64 * 1024;

/// How long a POST may wait for the hub to take its packets.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Engine.IO's separator of packets in a polling body (record separator).
const SEPARATOR: u8 = 0x1e;

/// `GET /socket.io/?EIO=4&transport=polling` without a `sid`: a new
/// session. Its connection task starts (the `open`, then the hub), and
/// the answer is the `open` packet.
pub async fn open(
    app: &Arc<App>,
    router: Router,
    request: &Request,
    remote: Option<SocketAddr>,
) -> HttpResponse {
    let Some(socket_io) = &app.socket_io else {
        return EngineError::BadRequest.response();
    };
    // Until its CONNECT, a session holds a handshake's place, as a
    // WebSocket does: many sessions that never connect are bounded per
    // address, not only in all.
    let place = match remote.map(|remote| app.handshakes.take(remote.ip())) {
        Some(Ok(place)) => Some(place),
        Some(Err(_)) => return HttpResponse::text(503, "too many handshakes in progress\n"),
        None => None,
    };
    let (server_io, client_io) = tokio::io::duplex(PIPE_BYTES);
    let server = WebSocket::from_stream(server_io, Role::Server, &app.net, BytesMut::new());
    // The client end pings nobody and never idles out: the hub's end keeps
    // the timers, and the Engine.IO heartbeat tells a client gone.
    let mut client_config = app.net.clone();
    client_config.ping_interval(None).idle_timeout(None);
    let (reader, writer) =
        WebSocket::from_stream(client_io, Role::Client, &client_config, BytesMut::new()).split();
    let sid = format!("{}{}", ConnId::random(), ConnId::random());
    let session = Arc::new(Session {
        reader: tokio::sync::Mutex::new(reader),
        writer,
        upgrading: AtomicBool::new(false),
        claimed: AtomicBool::new(false),
        wake: Notify::new(),
    });
    if !socket_io.polling.insert(sid.clone(), session.clone()) {
        return HttpResponse::text(503, "too many Socket.IO sessions\n");
    }
    let accepted = Accepted {
        socket: server,
        request: request.clone(),
        protocol: None,
        deflate: None,
        admission: (),
    };
    let task_app = app.clone();
    tokio::spawn(async move {
        let upgrades = ["websocket"];
        super::connect::run(&task_app, &router, accepted, remote, &sid, &upgrades, place).await;
        if let Some(socket_io) = &task_app.socket_io {
            socket_io.polling.remove(&sid);
        }
    });
    poll(
        &session,
        socket_io.max_payload,
        socket_io.options.ping_interval,
    )
    .await
}

/// `GET` with a `sid`: what the hub sent since the last one, waiting up
/// to `wait` for the first packet (the server pings within that time).
pub async fn get(app: &App, sid: &str) -> HttpResponse {
    let Some(socket_io) = &app.socket_io else {
        return EngineError::BadRequest.response();
    };
    let Some(session) = socket_io.polling.get(sid) else {
        return EngineError::UnknownSid.response();
    };
    let wait = socket_io.options.ping_interval + socket_io.options.ping_timeout;
    poll(&session, socket_io.max_payload, wait).await
}

async fn poll(session: &Session, max_payload: usize, wait: Duration) -> HttpResponse {
    // Two GETs at once break the protocol (engine.io answers 400 too).
    let Ok(mut reader) = session.reader.try_lock() else {
        return EngineError::BadRequest.response();
    };
    let wake = session.wake.notified();
    tokio::pin!(wake);
    wake.as_mut().enable();
    if session.upgrading.load(Ordering::SeqCst) {
        return payload(b"6".to_vec());
    }
    let first = tokio::select! {
        message = reader.recv() => message,
        () = &mut wake => return payload(b"6".to_vec()),
        () = tokio::time::sleep(wait) => return payload(b"6".to_vec()),
    };
    let mut body = Vec::new();
    let mut next = first;
    loop {
        match next {
            Some(Ok(message)) => append(&mut body, &message),
            // The hub closed the connection: Engine.IO's close.
            Some(Err(_)) | None => {
                append(&mut body, &Message::text("1"));
                break;
            }
        }
        if body.len() >= max_payload {
            break;
        }
        // What is already there goes in the same answer; nothing is awaited
        // (and no timer is made per message).
        match reader.recv().now_or_never() {
            Some(message) => next = message,
            None => break,
        }
    }
    payload(body)
}

fn append(body: &mut Vec<u8>, message: &Message) {
    if !body.is_empty() {
        body.push(SEPARATOR);
    }
    match message {
        Message::Text(text) => body.extend_from_slice(text.as_bytes()),
        Message::Binary(bytes) => {
            body.push(b'b');
            body.extend_from_slice(STANDARD.encode(bytes).as_bytes());
        }
    }
}

fn payload(body: Vec<u8>) -> HttpResponse {
    HttpResponse::new(200, "text/plain; charset=UTF-8", body)
        .with_header("Cache-Control", "no-store")
}

/// `POST` with a `sid`: the client's packets, written to the hub
/// connection in order. A body over `maxPayload` or that is not a polling
/// payload ends the session (as engine.io does).
pub async fn post(app: &App, sid: &str, body: &mut BodyStream<'_>) -> HttpResponse {
    let Some(socket_io) = &app.socket_io else {
        return EngineError::BadRequest.response();
    };
    let Some(session) = socket_io.polling.get(sid) else {
        return EngineError::UnknownSid.response();
    };
    let mut data = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return EngineError::BadRequest.response();
        };
        if data.len() + chunk.len() > socket_io.max_payload {
            let _ = session
                .writer
                .close(CloseCode::MESSAGE_TOO_BIG, "payload too large")
                .await;
            return HttpResponse::text(413, "payload too large\n");
        }
        data.extend_from_slice(&chunk);
    }
    let messages = match parse_payload(&data.freeze()) {
        Ok(messages) => messages,
        Err(why) => {
            let _ = session.writer.close(CloseCode::POLICY_VIOLATION, why).await;
            return EngineError::BadRequest.response();
        }
    };
    for message in messages {
        match tokio::time::timeout(POST_TIMEOUT, session.writer.send(message)).await {
            Ok(Ok(())) => {}
            _ => return EngineError::BadRequest.response(),
        }
    }
    HttpResponse::new(200, "text/html", "ok")
}

/// The packets of a polling body: text ones as they are, `b<base64>` as
/// binary messages.
pub fn parse_payload(body: &Bytes) -> Result<Vec<Message>, &'static str> {
    if body.is_empty() {
        return Err("an empty payload");
    }
    body.split(|b| *b == SEPARATOR)
        .map(|packet| match packet.first() {
            None => Err("an empty packet"),
            Some(b'b') => STANDARD
                .decode(&packet[1..])
                .map(|bytes| Message::Binary(Bytes::from(bytes)))
                .map_err(|_| "bad base64 in a binary packet"),
            Some(_) => std::str::from_utf8(packet)
                .map(|text| Message::text(text.to_owned()))
                .map_err(|_| "a text packet that is not UTF-8"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let messages = parse_payload(&Bytes::from_static(b"42[\"a\"]\x1ebAQID\x1e3")).unwrap();
        assert_eq!(
            messages,
            vec![
                Message::text("42[\"a\"]"),
                Message::Binary(Bytes::from_static(&[1, 2, 3])),
                Message::text("3"),
            ]
        );
        for bad in [&b""[..], b"\x1e", b"4\x1e", b"b!!", b"\xff\xfe"] {
            assert!(
                parse_payload(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
        let mut body = Vec::new();
        append(&mut body, &Message::text("2"));
        append(&mut body, &Message::Binary(Bytes::from_static(&[1, 2, 3])));
        assert_eq!(body, b"2\x1ebAQID");
    }
}
