//! The application's sends, over real loopback connections.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_hub::{ConnId, Hub, HubConfig};
use switchboard_net::{connect, WebSocket};

const WITHIN: Duration = Duration::from_secs(10);

/// Connects; returns the socket and its connection id (from `ready`).
async fn open(url: &str) -> (WebSocket, String) {
    let (mut socket, _) = tokio::time::timeout(WITHIN, connect(url))
        .await
        .expect("connect in time")
        .expect("connect");
    let ready = recv(&mut socket).await;
    assert_eq!(ready["event"], "ready");
    let id = ready["data"]["id"].as_str().unwrap().to_owned();
    (socket, id)
}

async fn recv(socket: &mut WebSocket) -> Value {
    let message = tokio::time::timeout(WITHIN, socket.recv())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("no error");
    serde_json::from_slice(message.payload()).unwrap()
}

#[tokio::test]
async fn emit_all_except_leaves_out_one_connection() {
    let hub = Hub::new(HubConfig::default());
    let url = common::serve(hub.clone()).await;
    let (mut a, a_id) = open(&url).await;
    let (mut b, _) = open(&url).await;
    let (mut c, _) = open(&url).await;

    let sent = hub.emit_all_except(&ConnId::from_string(a_id.clone()), "news", &json!(1));
    assert_eq!(sent, 2);
    let expected = json!({ "event": "news", "broadcast": true, "data": 1 });
    assert_eq!(recv(&mut b).await, expected);
    assert_eq!(recv(&mut c).await, expected);
    // A's queue is in order: the marker sent after is the first thing it gets.
    assert_eq!(hub.emit_to(&a_id, "marker", &Value::Null), Ok(()));
    assert_eq!(recv(&mut a).await["event"], "marker");
}
