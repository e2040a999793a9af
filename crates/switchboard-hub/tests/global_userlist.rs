//! `global_userlist`: the list of every connection, sent to everyone on a
//! connect, disconnect or rename, over real loopback connections; off by
//! default, none past `userlist_limit` connections, and held back under
//! `userlist_rate` like a room's list.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_hub::{Hub, HubConfig};
use switchboard_net::{connect, Message, WebSocket};

const WITHIN: Duration = Duration::from_secs(10);

async fn serve(configure: impl FnOnce(&mut HubConfig)) -> String {
    let mut config = HubConfig::default();
    configure(&mut config);
    common::serve(Hub::new(config)).await
}

/// A connection and its id, once `ready` has come.
async fn open(url: &str) -> (WebSocket, String) {
    let (mut socket, _) = tokio::time::timeout(WITHIN, connect(url))
        .await
        .expect("connect in time")
        .expect("connect");
    let ready = recv(&mut socket, WITHIN).await.expect("ready");
    assert_eq!(ready["event"], "ready");
    let id = ready["data"]["id"].as_str().unwrap().to_owned();
    (socket, id)
}

/// The next message, or `None` if none comes within `wait`.
async fn recv(socket: &mut WebSocket, wait: Duration) -> Option<Value> {
    let message = tokio::time::timeout(wait, socket.recv()).await.ok()?;
    let message = message.expect("a message").expect("no error");
    Some(serde_json::from_slice(message.payload()).unwrap())
}

async fn send(socket: &mut WebSocket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next hub-wide `userlist` (the one without `room`) within `wait`.
async fn hub_list(socket: &mut WebSocket, wait: Duration) -> Option<Vec<Value>> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = recv(socket, left).await?;
        if message["event"] == "userlist" && message.get("room").is_none() {
            return Some(message["data"].as_array().unwrap().clone());
        }
    }
}

fn ids(list: &[Value]) -> Vec<&str> {
    list.iter().map(|u| u["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn everyone_gets_the_list_on_connect_rename_and_disconnect() {
    let url = serve(|config| {
        config.global_userlist(true);
    })
    .await;
    let (mut a, a_id) = open(&url).await;
    assert_eq!(ids(&hub_list(&mut a, WITHIN).await.unwrap()), [&a_id]);

    // B in a room, A in none: both are on the one list.
    let (mut b, b_id) = open(&url).await;
    send(&mut b, json!({"event": "join", "room": "elsewhere"})).await;
    let mut both = vec![a_id.as_str(), b_id.as_str()];
    both.sort();
    for socket in [&mut a, &mut b] {
        let list = hub_list(socket, WITHIN).await.unwrap();
        assert_eq!(ids(&list), both);
    }

    send(&mut b, json!({"event": "rename", "data": {"name": "bob"}})).await;
    let list = loop {
        let list = hub_list(&mut a, WITHIN).await.unwrap();
        if list.iter().any(|u| u["name"] == "bob") {
            break list;
        }
    };
    let bob = list.iter().find(|u| u["id"] == b_id.as_str()).unwrap();
    assert_eq!(bob, &json!({"id": b_id, "name": "bob"}));

    b.close(switchboard_net::CloseCode::NORMAL, "bye")
        .await
        .ok();
    drop(b);
    loop {
        let list = hub_list(&mut a, WITHIN).await.unwrap();
        if ids(&list) == [&a_id] {
            break;
        }
    }
}

#[tokio::test]
async fn off_by_default() {
    let url = serve(|_| {}).await;
    let (mut a, _) = open(&url).await;
    let (_b, _) = open(&url).await;
    assert_eq!(hub_list(&mut a, Duration::from_millis(400)).await, None);
}

#[tokio::test]
async fn no_automatic_list_past_userlist_limit() {
    let url = serve(|config| {
        config.global_userlist(true).userlist_limit(2);
    })
    .await;
    let (mut a, _) = open(&url).await;
    let (_b, _) = open(&url).await;
    while hub_list(&mut a, WITHIN).await.unwrap().len() < 2 {}
    let (_c, _) = open(&url).await;
    assert_eq!(hub_list(&mut a, Duration::from_millis(400)).await, None);
    // `users` without a room still pages through everyone.
    send(&mut a, json!({"event": "users", "ack": 1})).await;
    let page = loop {
        let message = recv(&mut a, WITHIN).await.unwrap();
        if message["event"] == "ack" {
            break message["data"].as_array().unwrap().clone();
        }
    };
    assert_eq!(page.len(), 2, "a page is at most userlist_limit");
}

#[tokio::test]
async fn changes_over_the_rate_are_held_and_sent_together() {
    // A list of a few members to a few connections is a few hundred
    // bytes: at 200 bytes a second, the first list holds the next ones
    // back for more than a second.
    let url = serve(|config| {
        config.global_userlist(true).userlist_rate(200);
    })
    .await;
    let (mut a, _) = open(&url).await;
    hub_list(&mut a, WITHIN).await.unwrap();
    let mut others = Vec::new();
    for _ in 0..6 {
        others.push(open(&url).await.0);
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    // Six connects, each past the 50 ms interval: without the rate six
    // lists; with it, fewer, the last holding everyone.
    let mut lists = 0;
    loop {
        let list = hub_list(&mut a, WITHIN).await.unwrap();
        lists += 1;
        if list.len() == 7 {
            break;
        }
    }
    assert!(lists <= 3, "{lists} lists: the rate held none back");
}
