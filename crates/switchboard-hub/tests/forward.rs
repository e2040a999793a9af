//! The forwarder through the library API, over real loopback connections,
//! with an in-process asynchronous forwarder: answers in order per
//! connection though the forwarder answers out of order, the per-connection
//! bound (`proxy_busy`), other connections not held up, and `connect`/
//! `disconnect` with the connection's state.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_hub::{
    Emit, EmitTarget, Forward, ForwardError, ForwardKind, ForwardReply, Grant, Hub, HubConfig,
};
use switchboard_net::{connect, Message, WebSocket};
use tokio::sync::Notify;

const WITHIN: Duration = Duration::from_secs(10);

async fn open(url: &str) -> WebSocket {
    let (mut socket, _) = tokio::time::timeout(WITHIN, connect(url))
        .await
        .expect("connect in time")
        .expect("connect");
    assert_eq!(recv(&mut socket).await["event"], "ready");
    socket
}

async fn recv(socket: &mut WebSocket) -> Value {
    loop {
        let message = tokio::time::timeout(WITHIN, socket.recv())
            .await
            .expect("a message in time")
            .expect("a message")
            .expect("no error");
        let value: Value = serde_json::from_slice(message.payload()).unwrap();
        if value["event"] != "userlist" {
            return value;
        }
    }
}

async fn send(socket: &mut WebSocket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// A forwarder that answers `n` after `50 - n` ms (later events sooner, so
/// that only the queue keeps them in order), holds `wait` until `gate` is
/// notified, fails `fail`, and keeps every `connect`/`disconnect` it sees.
fn hub(max_queue: usize, gate: Arc<Notify>, seen: Arc<Mutex<Vec<Forward>>>) -> Hub {
    let mut config = HubConfig::default();
    config.max_forward_queue(max_queue);
    hub_with(config, gate, seen)
}

/// [`hub`] with a configuration of the caller's.
fn hub_with(config: HubConfig, gate: Arc<Notify>, seen: Arc<Mutex<Vec<Forward>>>) -> Hub {
    let hub = Hub::new(config);
    hub.set_grant_authorizer(|_| {
        let mut grant = Grant::default();
        grant.join = vec!["lobby".into()];
        grant.profile = json!({"role": "tester"}).as_object().cloned();
        Ok(grant)
    });
    hub.set_forwarder(move |forward: Forward| {
        let (gate, seen) = (gate.clone(), seen.clone());
        Box::pin(async move {
            if forward.kind != ForwardKind::Event {
                seen.lock().unwrap().push(forward);
                return Ok(ForwardReply::default());
            }
            match forward.event.as_str() {
                "wait" => gate.notified().await,
                "fail" => return Err(ForwardError::new("nope", "refused")),
                "count" => {
                    let n = forward.data.as_u64().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(50u64.saturating_sub(n))).await;
                }
                _ => {}
            }
            Ok(ForwardReply {
                data: forward.data.clone(),
                emit: vec![Emit {
                    event: "seen".into(),
                    data: forward.data,
                    target: EmitTarget::Sender,
                    ask: None,
                }],
            })
        })
    });
    hub
}

#[tokio::test]
async fn answers_come_in_order_per_connection() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = common::serve(hub(64, Arc::new(Notify::new()), seen)).await;
    let mut socket = open(&url).await;
    for n in 0..20 {
        send(&mut socket, json!({"event": "count", "data": n, "ack": n})).await;
    }
    for n in 0..20 {
        let emitted = recv(&mut socket).await;
        assert_eq!(
            (&emitted["event"], &emitted["data"]),
            (&json!("seen"), &json!(n))
        );
        let ack = recv(&mut socket).await;
        assert_eq!((&ack["ack"], &ack["data"]), (&json!(n), &json!(n)));
    }
    send(&mut socket, json!({"event": "fail", "ack": "f"})).await;
    let failed = recv(&mut socket).await;
    assert_eq!(
        failed["error"],
        json!({"code": "nope", "message": "refused", "event": "fail"})
    );
}

#[tokio::test]
async fn a_full_queue_is_busy_and_holds_up_no_one_else() {
    let gate = Arc::new(Notify::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = common::serve(hub(2, gate.clone(), seen)).await;
    let mut stuck = open(&url).await;
    for n in 0..3 {
        send(&mut stuck, json!({"event": "wait", "data": n, "ack": n})).await;
    }
    let busy = recv(&mut stuck).await;
    assert_eq!(
        (&busy["ack"], &busy["error"]["code"]),
        (&json!(2), &json!("proxy_busy"))
    );
    // The hub still answers the stuck connection, and others' events pass.
    send(
        &mut stuck,
        json!({"event": "join", "room": "x", "ack": "j"}),
    )
    .await;
    assert_eq!(recv(&mut stuck).await["ack"], "j");
    let mut other = open(&url).await;
    send(&mut other, json!({"event": "count", "data": 50, "ack": 1})).await;
    assert_eq!(recv(&mut other).await["event"], "seen");
    assert_eq!(recv(&mut other).await["data"], 50);
    gate.notify_waiters();
    assert_eq!(recv(&mut stuck).await["event"], "seen");
    assert_eq!(recv(&mut stuck).await["ack"], 0);
}

#[tokio::test]
async fn a_queue_full_in_bytes_is_busy_before_its_count() {
    let gate = Arc::new(Notify::new());
    let mut config = HubConfig::default();
    config.max_forward_queue(64).max_pending_send_bytes(250_000);
    let url = common::serve(hub_with(config, gate.clone(), Default::default())).await;
    let mut big = open(&url).await;
    let filler = "x".repeat(100_000);
    // Two 100 kB events fit in 250 kB; the third does not, though the
    // count (64) is far off.
    for n in 0..3 {
        send(&mut big, json!({"event": "wait", "data": filler, "ack": n})).await;
    }
    let busy = recv(&mut big).await;
    assert_eq!(
        (&busy["ack"], &busy["error"]["code"]),
        (&json!(2), &json!("proxy_busy"))
    );
    // Once the waiting ones are answered, their bytes are free again.
    for n in 0..2 {
        gate.notify_one();
        assert_eq!(recv(&mut big).await["event"], "seen");
        assert_eq!(recv(&mut big).await["ack"], n);
    }
    send(&mut big, json!({"event": "count", "data": 1, "ack": 9})).await;
    assert_eq!(recv(&mut big).await["event"], "seen");
    assert_eq!(recv(&mut big).await["ack"], 9);
}

#[tokio::test]
async fn connect_and_disconnect_carry_the_connections_state() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = common::serve(hub(64, Arc::new(Notify::new()), seen.clone())).await;
    let mut socket = open(&url).await;
    socket
        .close(switchboard_net::CloseCode::NORMAL, "done")
        .await
        .ok();
    let deadline = tokio::time::Instant::now() + WITHIN;
    while seen.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no disconnect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].kind, ForwardKind::Connect);
    assert_eq!(seen[0].connection.rooms, ["lobby"]);
    assert_eq!(seen[0].connection.meta, json!({"role": "tester"}));
    assert_eq!(seen[1].kind, ForwardKind::Disconnect);
    assert_eq!(seen[1].connection.rooms, ["lobby"], "its last state");
    assert_eq!(seen[1].data, json!({"code": 1000, "reason": "done"}));
}
