//! The start of a Socket.IO connection, before it is a hub connection:
//! the Engine.IO `open` packet, then the client's first CONNECT, whose
//! `auth` goes to the authorizer and the connect proxy. Accepted, the
//! connection joins the hub (which answers the CONNECT); refused, the
//! client gets CONNECT_ERROR with the reason and the transport closes.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_hub::socketio::packet::{encode, EnginePacket, Kind, Packet};
use switchboard_net::{Accepted, CloseCode, Message, WebSocket};
use switchboard_proto::handshake::{Header, Request};

use super::super::app::App;
use super::super::routes::Router;

/// The longest a client has for its CONNECT after the `open`: it sends it
/// at once, so this is the HTTP handshake's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The header that carries the CONNECT's `auth` object (as JSON) to the
/// authorizer, on a copy of the upgrade request.
pub const AUTH_HEADER: &str = "x-socketio-auth";

/// Runs a Socket.IO connection on `accepted` (a WebSocket, or a polling
/// session's in-memory one) from its `open` to its end. `place` (the
/// connection's place among the handshakes) is held until the CONNECT is
/// read: a connection that never sends one holds a handshake's place.
pub async fn run<P>(
    app: &App,
    router: &Router,
    mut accepted: Accepted<()>,
    remote: Option<SocketAddr>,
    sid: &str,
    upgrades: &[&str],
    place: P,
) {
    let Some(socket_io) = &app.socket_io else {
        return;
    };
    let open = socket_io.open_packet(sid, upgrades);
    if accepted.socket.send(Message::text(open)).await.is_err() {
        return;
    }
    let read = tokio::time::timeout(CONNECT_TIMEOUT, first_connect(&mut accepted.socket));
    let read = read.await;
    drop(place);
    let (nsp, auth) = match read {
        Ok(Ok(connect)) => connect,
        Ok(Err(why)) => {
            tracing::debug!(
                ?remote,
                why,
                "socket.io connection ended before its CONNECT"
            );
            let _ = accepted
                .socket
                .close(CloseCode::POLICY_VIOLATION, why)
                .await;
            return;
        }
        Err(_) => {
            let _ = accepted
                .socket
                .close(CloseCode::POLICY_VIOLATION, "no CONNECT")
                .await;
            return;
        }
    };
    if !socket_io.options.has_namespace(&nsp) {
        refuse(&mut accepted.socket, &nsp, "Invalid namespace", None).await;
        return;
    }
    let request = with_auth(&accepted.request, auth.as_ref());
    match router.admit_socket_io(&request, auth.as_ref()).await {
        Ok(mut admission) => {
            admission.socket_io(socket_io.options.clone(), &nsp);
            let (accepted, ()) = accepted.replace_admission(admission);
            app.hub.serve(accepted, remote).await;
        }
        Err(error) => {
            let data = json!({ "status": error.status() });
            refuse(&mut accepted.socket, &nsp, error.reason(), Some(data)).await;
        }
    }
}

/// Reads until the first CONNECT: its namespace and `auth`. Pongs and
/// noops may come before it; anything else is an error.
async fn first_connect(socket: &mut WebSocket) -> Result<(String, Option<Value>), &'static str> {
    loop {
        let message = match socket.recv().await {
            Some(Ok(message)) => message,
            Some(Err(_)) | None => return Err("closed"),
        };
        let Message::Text(text) = message else {
            return Err("a binary message before CONNECT");
        };
        match EnginePacket::parse(text.as_str()) {
            Some(EnginePacket::Pong(_) | EnginePacket::Noop) => continue,
            Some(EnginePacket::Message(packet)) => match Packet::parse(packet, 0) {
                Ok(packet) if packet.kind == Kind::Connect => return Ok((packet.nsp, packet.data)),
                _ => return Err("the first packet must be a CONNECT"),
            },
            _ => return Err("the first packet must be a CONNECT"),
        }
    }
}

/// CONNECT_ERROR with `message` (and `data`), then the close.
async fn refuse(socket: &mut WebSocket, nsp: &str, message: &str, data: Option<Value>) {
    let mut body = json!({ "message": message });
    if let Some(data) = data {
        body["data"] = data;
    }
    let packet = encode(Kind::ConnectError, nsp, 0, None, Some(&body));
    if socket.send(Message::text(packet)).await.is_ok() {
        let _ = socket.close(CloseCode::NORMAL, "connect refused").await;
    }
}

/// A copy of the upgrade request with the CONNECT's `auth`: as JSON in
/// `X-Socketio-Auth`, and `auth.token` (a string) as `Authorization:
/// Bearer` when the request has no such header, so that `--ws-token`, the
/// JWT checks and an authorizer that reads the bearer token take it.
pub fn with_auth(request: &Request, auth: Option<&Value>) -> Request {
    let mut headers: Vec<Header> = request
        .headers()
        .iter()
        .filter(|h| !h.name.eq_ignore_ascii_case(AUTH_HEADER))
        .cloned()
        .collect();
    if let Some(auth) = auth {
        headers.push(Header {
            name: AUTH_HEADER.into(),
            value: auth.to_string().into_bytes(),
        });
        let token = auth.get("token").and_then(Value::as_str);
        if let (Some(token), None) = (token, request.header("authorization")) {
            headers.push(Header {
                name: "authorization".into(),
                value: format!("Bearer {token}").into_bytes(),
            });
        }
    }
    Request::from_parts(request.method(), request.target(), 1, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_reaches_the_request() {
        let request = Request::from_parts("GET", "/socket.io/?EIO=4", 1, Vec::new());
        let with = with_auth(&request, Some(&json!({"token": "t1", "n": 1})));
        assert_eq!(with.header("authorization"), Some("Bearer t1"));
        assert_eq!(with.header(AUTH_HEADER), Some("{\"n\":1,\"token\":\"t1\"}"));
        assert_eq!(with.target(), "/socket.io/?EIO=4");
        assert_eq!(with_auth(&request, None).header(AUTH_HEADER), None);
    }
}
