//! A long-polling session moving to a WebSocket (engine.io-protocol v4,
//! "Upgrade"): the client opens `?transport=websocket&sid=…`, sends
//! `2probe` and gets `3probe`; polling is paused (the GET in progress
//! answers a noop); the client sends `5`, and from then on the session's
//! packets go over the WebSocket.
//!
//! The hub connection stays where it is, on the session's in-memory
//! WebSocket: this task relays messages between it and the client's
//! WebSocket, whole and in order. That costs a second task and a copy per
//! message for upgraded sessions (a client that opens the WebSocket
//! directly, `transports: ["websocket"]`, has neither), and keeps one hub
//! connection from the handshake to the end: no id change, no message lost
//! or repeated across the switch.

use std::sync::Arc;
use std::time::Duration;

use switchboard_net::{Accepted, CloseCode, Message, Reader, WebSocket, Writer};

use super::sessions::Session;

/// How long the client has for each step of the upgrade.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the upgrade, then relays until either side closes.
pub async fn run(mut accepted: Accepted<()>, session: Arc<Session>) {
    let socket = &mut accepted.socket;
    if !session.claim() {
        let why = "the session is being upgraded already";
        let _ = socket.close(CloseCode::POLICY_VIOLATION, why).await;
        return;
    }
    if next_text(socket).await.as_deref() != Some("2probe")
        || socket.send(Message::text("3probe")).await.is_err()
    {
        session.resume_polling();
        let _ = socket
            .close(CloseCode::POLICY_VIOLATION, "expected 2probe")
            .await;
        return;
    }
    session.pause_polling();
    loop {
        match next_text(socket).await.as_deref() {
            Some("5") => break,
            // A client may probe again, or ping, while polling finishes.
            Some("2probe") => {
                if socket.send(Message::text("3probe")).await.is_err() {
                    session.resume_polling();
                    return;
                }
            }
            _ => {
                session.resume_polling();
                let _ = socket
                    .close(CloseCode::POLICY_VIOLATION, "expected 5 (upgrade)")
                    .await;
                return;
            }
        }
    }
    let mut reader = session.reader().await;
    relay(socket, &mut reader, session.writer()).await;
}

/// The next text message within the step's time.
async fn next_text(socket: &mut WebSocket) -> Option<String> {
    match tokio::time::timeout(STEP_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => Some(text.as_str().to_owned()),
        _ => None,
    }
}

/// Messages both ways until one side closes; the close is passed on.
async fn relay(socket: &mut WebSocket, hub: &mut Reader, to_hub: &Writer) {
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(message)) => {
                    if to_hub.send(message).await.is_err() {
                        break;
                    }
                }
                _ => {
                    let _ = to_hub.close(CloseCode::NORMAL, "transport closed").await;
                    break;
                }
            },
            message = hub.recv() => match message {
                Some(Ok(message)) => {
                    if socket.send(message).await.is_err() {
                        let _ = to_hub.close(CloseCode::NORMAL, "transport closed").await;
                        break;
                    }
                }
                _ => {
                    let (code, reason) = hub
                        .close_info()
                        .map(|info| {
                            let frame = info.received.as_ref().or(info.sent.as_ref());
                            (info.code(), frame.map(|f| f.reason.clone()).unwrap_or_default())
                        })
                        .unwrap_or((CloseCode::NORMAL, String::new()));
                    let _ = socket.close(code, &reason).await;
                    break;
                }
            },
        }
    }
}
