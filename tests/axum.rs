//! `examples/axum.rs` run for real: the app's page and API and the hub's
//! `/ws` on one port, reached by the Rust client, a plain WebSocket and
//! plain HTTP; the hub's authorizer and shutdown decide on upgrades that
//! came through axum.

#[allow(dead_code)]
#[path = "../examples/axum.rs"]
mod axum_example;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_client::{Client, ClientError, ClientOptions, To};
use switchboard_hub::net::{connect, Message, WebSocket};
use switchboard_hub::Hub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WITHIN: Duration = Duration::from_secs(10);

/// Serves the example's app with `hub` on a fresh loopback port.
async fn serve(hub: Hub) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = axum_example::app(hub).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await });
    address
}

/// A GET over a fresh connection: the status code and the body.
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let response = tokio::time::timeout(WITHIN, exchange)
        .await
        .expect("GET timed out");
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, body.to_owned())
}

/// The next text message's event and data, skipping none.
async fn next(socket: &mut WebSocket) -> (String, Value) {
    let message = tokio::time::timeout(WITHIN, socket.recv())
        .await
        .expect("no message in time")
        .expect("connection ended")
        .expect("connection failed");
    let Message::Text(text) = message else {
        panic!("not text: {message:?}");
    };
    let value: Value = serde_json::from_str(&text).unwrap();
    (
        value["event"].as_str().unwrap().to_owned(),
        value["data"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_the_api_and_the_hub_share_one_port() {
    let hub = axum_example::chat_hub();
    let address = serve(hub.clone()).await;

    let (status, page) = get(address, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("new WebSocket"), "{page}");

    let ann = tokio::time::timeout(
        WITHIN,
        Client::connect(
            &format!("ws://{address}/ws?user=ann"),
            ClientOptions::default(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let mut shouts = ann.events();
    let (mut bob, _) = connect(&format!("ws://{address}/ws?user=bob"))
        .await
        .unwrap();
    let (event, _) = next(&mut bob).await;
    assert_eq!(event, "ready");

    let (status, online) = get(address, "/api/online").await;
    assert_eq!(status, 200);
    let online: Value = serde_json::from_str(&online).unwrap();
    assert_eq!(online["connections"], 2, "{online}");
    let mut users: Vec<&str> = online["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["ann", "bob"]);

    // The raw socket shouts with an ack; both hear it, with the user the
    // authorizer put in the connection's metadata.
    let shout = json!({"event": "shout", "data": "hello", "ack": 1});
    bob.send(Message::text(shout.to_string())).await.unwrap();
    let mut heard = Vec::new();
    while heard.len() < 2 {
        heard.push(next(&mut bob).await);
    }
    assert!(heard.contains(&("ack".into(), json!("sent"))), "{heard:?}");
    assert!(
        heard.contains(&("shout".into(), json!({"user": "bob", "text": "hello"}))),
        "{heard:?}"
    );
    let incoming = tokio::time::timeout(WITHIN, async {
        loop {
            let incoming = shouts.recv().await.unwrap();
            if incoming.event == "shout" {
                return incoming;
            }
        }
    })
    .await
    .expect("ann heard no shout");
    assert_eq!(incoming.data, json!({"user": "bob", "text": "hello"}));

    // The Rust client's ack comes back from the handler too.
    let answer = ann
        .emit_with_ack("shout", &json!("hi"), To::Server)
        .await
        .unwrap();
    assert_eq!(answer, json!("sent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_decides_on_upgrades_through_axum() {
    let address = serve(axum_example::chat_hub()).await;
    let error = connect(&format!("ws://{address}/ws")).await.unwrap_err();
    let refusal = error.handshake_error().expect("a handshake refusal");
    assert_eq!(refusal.status(), 401, "{error}");
    assert!(refusal.reason().contains("?user="), "{error}");

    let error = tokio::time::timeout(
        WITHIN,
        Client::connect(&format!("ws://{address}/ws"), ClientOptions::default()),
    )
    .await
    .expect("the client gave up at once")
    .unwrap_err();
    assert!(
        matches!(error, ClientError::Refused { status: 401, .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_upgrades_through_axum_are_refused_and_the_app_still_answers() {
    let hub = axum_example::chat_hub();
    let address = serve(hub.clone()).await;
    let (mut ann, _) = connect(&format!("ws://{address}/ws?user=ann"))
        .await
        .unwrap();
    assert_eq!(next(&mut ann).await.0, "ready");

    let shutdown = tokio::spawn({
        let hub = hub.clone();
        async move { hub.shutdown(WITHIN).await }
    });
    assert_eq!(next(&mut ann).await.0, "end");
    let error = connect(&format!("ws://{address}/ws?user=bob"))
        .await
        .unwrap_err();
    assert_eq!(
        error.handshake_error().map(|e| e.status()),
        Some(503),
        "{error}"
    );
    assert_eq!(get(address, "/api/online").await.0, 200);
    drop(ann);
    assert!(shutdown.await.unwrap(), "every connection left in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_connection_limit_holds_through_axum() {
    let mut config = switchboard_hub::HubConfig::default();
    config.max_connections(1);
    let hub = Hub::new(config);
    let address = serve(hub).await;
    let (mut first, _) = connect(&format!("ws://{address}/ws")).await.unwrap();
    assert_eq!(next(&mut first).await.0, "ready");
    let error = connect(&format!("ws://{address}/ws")).await.unwrap_err();
    assert_eq!(
        error.handshake_error().map(|e| e.status()),
        Some(503),
        "{error}"
    );
}
