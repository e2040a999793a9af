//! The hooks on a connection's life beside its messages, over real
//! loopback connections: `on_connect` (open), `on_pong`, `on_error` (a
//! refused request, a protocol violation) and `on_close` with the code and
//! reason, and the forwarder's opt-in `error` notices.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{open, recv};
use serde_json::json;
use switchboard_hub::{Forward, ForwardKind, ForwardReply, Hub, HubConfig, SocketError};
use switchboard_net::{CloseCode, Message};

const WITHIN: Duration = Duration::from_secs(10);

/// Waits until `seen` holds `n` entries.
async fn until_len<T>(seen: &Mutex<Vec<T>>, n: usize) {
    tokio::time::timeout(WITHIN, async {
        while seen.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} entries in time"));
}

#[tokio::test]
async fn open_pong_and_close_hooks_see_the_connection() {
    let hub = Hub::new(HubConfig::default());
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    hub.on_connect(move |_, socket| {
        log.lock().unwrap().push("open".into());
        let _ = socket.emit("hello", &json!("new socket"));
    });
    let log = seen.clone();
    hub.on_pong(move |_, _, payload| {
        log.lock()
            .unwrap()
            .push(format!("pong {}", String::from_utf8_lossy(payload)));
    });
    let log = seen.clone();
    hub.on_disconnect(move |_, _| log.lock().unwrap().push("disconnect".into()));
    let log = seen.clone();
    hub.on_close(move |hub, socket, code, reason| {
        assert!(
            hub.socket(socket.id().as_str()).is_none(),
            "gone from the hub"
        );
        log.lock().unwrap().push(format!("close {code} {reason}"));
    });
    let url = common::serve(hub).await;

    let mut client = open(&url).await;
    assert_eq!(recv(&mut client).await["data"], "new socket");
    client.writer().pong(b"still here").await.unwrap();
    until_len(&seen, 2).await;
    client
        .close(CloseCode(4000), "bye")
        .await
        .expect("closing handshake");
    until_len(&seen, 4).await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["open", "pong still here", "disconnect", "close 4000 bye"]
    );
}

#[tokio::test]
async fn error_hooks_see_refused_requests_and_protocol_violations() {
    let hub = Hub::new(HubConfig::default());
    let errors = Arc::new(Mutex::new(Vec::<SocketError>::new()));
    let log = errors.clone();
    hub.on_error(move |_, _, error| log.lock().unwrap().push(error.clone()));
    let closes = Arc::new(Mutex::new(Vec::<(u16, String)>::new()));
    let log = closes.clone();
    hub.on_close(move |_, _, code, reason| log.lock().unwrap().push((code, reason.into())));
    let mut config = switchboard_net::Config::default();
    config.max_message_size(1 << 20);
    let url = common::serve_with(hub, config).await;

    let mut client = open(&url).await;
    client.send(Message::text("not json")).await.unwrap();
    assert_eq!(recv(&mut client).await["data"]["code"], "invalid_json");
    until_len(&errors, 1).await;
    {
        let errors = errors.lock().unwrap();
        assert_eq!(errors[0].code, "invalid_json");
        assert_eq!(errors[0].close_code, None, "the connection stays open");
    }

    // A message over max_message_size (1 MiB): closed with 1009.
    let big = "x".repeat((1 << 20) + 1);
    client.send(Message::text(big)).await.ok();
    until_len(&errors, 2).await;
    until_len(&closes, 1).await;
    let errors = errors.lock().unwrap();
    assert_eq!(errors[1].code, "protocol_error");
    assert_eq!(errors[1].close_code, Some(1009));
    assert_eq!(closes.lock().unwrap()[0].0, 1009);
}

#[tokio::test]
async fn the_forwarder_gets_errors_when_it_asks_for_them() {
    let hub = Hub::new(HubConfig::default());
    let seen = Arc::new(Mutex::new(Vec::<Forward>::new()));
    let log = seen.clone();
    hub.set_forwarder(move |forward| {
        log.lock().unwrap().push(forward);
        Box::pin(async { Ok(ForwardReply::default()) })
    });
    hub.forward_events(["error".to_owned()]);
    let url = common::serve(hub).await;

    let mut client = open(&url).await;
    client
        .send(Message::text(r#"{"event":"join"}"#))
        .await
        .unwrap();
    assert_eq!(recv(&mut client).await["data"]["code"], "invalid_room");
    client.close(CloseCode::NORMAL, "").await.unwrap();
    until_len(&seen, 3).await;
    let seen = seen.lock().unwrap();
    let kinds: Vec<_> = seen.iter().map(|forward| forward.kind).collect();
    assert_eq!(
        kinds,
        [
            ForwardKind::Connect,
            ForwardKind::Error,
            ForwardKind::Disconnect
        ]
    );
    assert_eq!(seen[1].event, "error");
    assert_eq!(seen[1].data["code"], "invalid_room");
    assert_eq!(seen[2].data, json!({"code": 1000, "reason": ""}));
}
