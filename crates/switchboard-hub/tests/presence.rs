//! User lists under `userlist_rate`, over real loopback connections: a room
//! whose lists cost more than the rate is held back, and its changes go
//! out together when the hold ends, while other rooms' lists go on time.

mod common;

use std::time::{Duration, Instant};

use common::{open, recv, send};
use serde_json::{json, Value};
use switchboard_hub::{Hub, HubConfig};
use switchboard_net::WebSocket;

/// Bytes of user lists a second per room: a list of three members sent to
/// three members is about 450 bytes, a hold of more than two seconds.
const RATE: usize = 200;

async fn serve() -> String {
    let mut config = HubConfig::default();
    config.userlist_rate(RATE);
    common::serve(Hub::new(config)).await
}

/// The next `userlist` of `room`, skipping everything else.
async fn userlist(socket: &mut WebSocket, room: &str) -> Vec<Value> {
    loop {
        let message = recv(socket).await;
        if message["event"] == "userlist" && message["room"] == room {
            return message["data"].as_array().unwrap().clone();
        }
    }
}

#[tokio::test]
async fn a_room_over_its_rate_is_held_while_other_rooms_go_on_time() {
    let url = serve().await;
    let mut members = Vec::new();
    for _ in 0..3 {
        let mut member = open(&url).await;
        send(&mut member, json!({"event": "join", "room": "big"})).await;
        members.push(member);
    }
    // The joins' list goes out, and holds the room for about two seconds.
    while userlist(&mut members[0], "big").await.len() < 3 {}

    send(
        &mut members[1],
        json!({"event": "rename", "data": {"name": "renamed"}}),
    )
    .await;
    let renamed_at = Instant::now();
    let mut other = open(&url).await;
    send(&mut other, json!({"event": "join", "room": "small"})).await;
    let list = userlist(&mut other, "small").await;
    assert_eq!(list.len(), 1);
    assert!(
        renamed_at.elapsed() < Duration::from_secs(1),
        "another room's list waited {:?} behind the held one",
        renamed_at.elapsed()
    );

    let list = userlist(&mut members[0], "big").await;
    assert!(
        list.iter().any(|user| user["name"] == "renamed"),
        "{list:?}"
    );
    assert!(
        renamed_at.elapsed() > Duration::from_secs(1),
        "the held room's list went after {:?}",
        renamed_at.elapsed()
    );
}
