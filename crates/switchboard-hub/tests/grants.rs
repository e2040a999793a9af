//! Grants through the library API, over real loopback connections: an
//! authorizer that limits rooms and sets an expiry, and a refresher. What
//! the server binary does with JWT is this, with tokens.

mod common;

use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use switchboard_hub::{Access, Grant, Hub, HubConfig, RequestError, TOKEN_EXPIRED};
use switchboard_net::{connect, Event, Message, WebSocket};

const WITHIN: Duration = Duration::from_secs(10);

/// A grant for `subject` limited to rooms `lobby` and `team-*`, sending to
/// `lobby` only, expiring in `lifetime`.
fn grant(subject: &str, lifetime: Duration) -> Grant {
    let mut grant = Grant::default();
    grant.subject = Some(subject.to_owned());
    grant.name = Some(format!("user {subject}"));
    grant.rooms = Access::only(["lobby", "team-*"]);
    grant.publish = Access::only(["lobby"]);
    grant.expires = Some(SystemTime::now() + lifetime);
    grant
}

/// A hub whose authorizer grants `?sub=` for `lifetime` (or, with
/// `?expired`, until a second ago), and whose refresher takes tokens
/// `SUBJECT:SECONDS`.
async fn serve(lifetime: Duration) -> String {
    let hub = Hub::new(HubConfig::default());
    hub.set_grant_authorizer(move |request| match request.query_param("sub") {
        Some(sub) if request.query_param("expired").is_some() => {
            let mut over = grant(&sub, lifetime);
            over.expires = Some(SystemTime::now() - Duration::from_secs(1));
            Ok(over)
        }
        Some(sub) => Ok(grant(&sub, lifetime)),
        None => Err((401, "sub required".into())),
    });
    hub.set_refresher(|token| {
        let (sub, seconds) = token
            .split_once(':')
            .and_then(|(sub, s)| Some((sub, s.parse::<f64>().ok()?)))
            .ok_or_else(|| RequestError::new("invalid_token", "SUBJECT:SECONDS"))?;
        Ok(grant(sub, Duration::from_secs_f64(seconds)))
    });
    common::serve(hub).await
}

async fn open(url: &str) -> (WebSocket, Value) {
    let (socket, _) = tokio::time::timeout(WITHIN, connect(url))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut socket = socket;
    let ready = recv(&mut socket).await;
    (socket, ready)
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

async fn request(socket: &mut WebSocket, message: Value) -> Value {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
    recv(socket).await
}

/// Reads to the close; returns its code.
async fn close_code(socket: &mut WebSocket) -> (Vec<Value>, u16) {
    let mut before = Vec::new();
    loop {
        let event = tokio::time::timeout(WITHIN, socket.next_event())
            .await
            .expect("the close in time")
            .expect("no error");
        match event {
            Event::Message(message) => {
                before.push(serde_json::from_slice(message.payload()).unwrap())
            }
            Event::Closed(info) => {
                return (
                    before,
                    info.received.and_then(|f| f.code).map_or(0, |c| c.0),
                )
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn the_grant_names_the_connection_and_limits_its_rooms() {
    let url = serve(Duration::from_secs(60)).await;
    let (mut socket, ready) = open(&format!("{url}?sub=ann&name=other")).await;
    assert_eq!(ready["data"]["name"], "user ann");
    let refused = request(&mut socket, json!({"event":"join","room":"staff","ack":1})).await;
    assert_eq!(refused["error"]["code"], "forbidden");
    let joined = request(&mut socket, json!({"event":"join","room":"team-a","ack":2})).await;
    assert_eq!(joined["data"]["room"], "team-a");
    let sent = request(&mut socket, json!({"event":"x","room":"team-a","ack":3})).await;
    assert_eq!(sent["error"]["code"], "forbidden");
    let all = request(&mut socket, json!({"event":"x","broadcast":true,"ack":4})).await;
    assert_eq!(all["error"]["code"], "forbidden");
    let lobby = request(&mut socket, json!({"event":"x","room":"lobby","ack":5})).await;
    assert_eq!(lobby["data"]["delivered"], 0);
}

#[tokio::test]
async fn a_grant_that_is_over_already_is_refused_at_the_upgrade() {
    let url = serve(Duration::from_secs(60)).await;
    let error = connect(&format!("{url}?sub=ann&expired=1"))
        .await
        .unwrap_err();
    assert_eq!(error.handshake_error().map(|e| e.status()), Some(403));
}

#[tokio::test]
async fn expiry_closes_with_4001_and_refresh_moves_it() {
    let url = serve(Duration::from_millis(300)).await;
    let (mut expiring, _) = open(&format!("{url}?sub=ann")).await;
    let started = Instant::now();
    let (before, code) = close_code(&mut expiring).await;
    assert_eq!(code, TOKEN_EXPIRED.0);
    assert_eq!(before.last().unwrap()["data"]["code"], "token_expired");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );

    let (mut refreshed, _) = open(&format!("{url}?sub=ann")).await;
    let wrong = request(
        &mut refreshed,
        json!({"event":"refresh","data":{"token":"bob:60"},"ack":1}),
    )
    .await;
    assert_eq!(wrong["error"]["code"], "subject_mismatch");
    let moved = request(
        &mut refreshed,
        json!({"event":"refresh","data":{"token":"ann:60"},"ack":2}),
    )
    .await;
    assert!(moved["data"]["expires"].as_u64().is_some(), "{moved}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let still = request(&mut refreshed, json!({"event":"users","ack":3})).await;
    assert_eq!(still["event"], "ack");
    request(
        &mut refreshed,
        json!({"event":"refresh","data":{"token":"ann:0.2"},"ack":4}),
    )
    .await;
    assert_eq!(close_code(&mut refreshed).await.1, TOKEN_EXPIRED.0);
}
