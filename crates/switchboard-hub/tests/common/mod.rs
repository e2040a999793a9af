//! What the hub's integration tests share (each test file uses a part).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard_hub::Hub;
use switchboard_net::{accept, connect, Config, Message, WebSocket};
use tokio::net::TcpListener;

/// Serves `hub` on a fresh port the way an embedding program does: the hub
/// is the accept handler, and each admitted connection runs in the task
/// that accepted it. Returns the hub's URL.
pub async fn serve(hub: Hub) -> String {
    serve_with(hub, Config::default()).await
}

/// [`serve`] with the transport's settings given.
#[allow(dead_code)]
pub async fn serve_with(hub: Hub, config: Config) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let config = Arc::new(config);
        while let Ok((stream, remote)) = listener.accept().await {
            let (hub, config) = (hub.clone(), config.clone());
            tokio::spawn(async move {
                if let Ok(Some(accepted)) = accept(stream, &config, &hub).await {
                    hub.serve(accepted, Some(remote)).await;
                }
            });
        }
    });
    url
}

/// Bound on waiting for a message that should come.
pub const WITHIN: Duration = Duration::from_secs(10);

/// Connects to the hub and waits for its `ready`.
pub async fn open(url: &str) -> WebSocket {
    open_with_id(url).await.0
}

/// [`open`], with the connection's id (from its `ready`).
pub async fn open_with_id(url: &str) -> (WebSocket, String) {
    let (mut socket, _) = tokio::time::timeout(WITHIN, connect(url))
        .await
        .expect("connect in time")
        .expect("connect");
    let ready = recv(&mut socket).await;
    assert_eq!(ready["event"], "ready", "{ready}");
    (socket, ready["data"]["id"].as_str().unwrap().to_owned())
}

/// The next message, as JSON.
pub async fn recv(socket: &mut WebSocket) -> Value {
    let message = tokio::time::timeout(WITHIN, socket.recv())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("no error");
    serde_json::from_slice(message.payload()).unwrap()
}

/// The next message that is not a user list, as JSON.
pub async fn next_event(socket: &mut WebSocket) -> Value {
    loop {
        let message = recv(socket).await;
        if message["event"] != "userlist" {
            return message;
        }
    }
}

/// Sends a JSON message.
pub async fn send(socket: &mut WebSocket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("send");
}
