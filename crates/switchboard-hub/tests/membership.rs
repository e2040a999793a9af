//! The server putting connections in rooms and naming them
//! (`Hub::join_room`, `leave_room`, `set_name`), over real loopback
//! connections.

mod common;

use common::{next_event, open, send};
use serde_json::json;
use switchboard_hub::{Hub, HubConfig};

#[tokio::test]
async fn a_connect_hook_puts_every_newcomer_in_the_lobby_under_a_name() {
    let hub = Hub::new(HubConfig::default());
    hub.on_connect(|hub, socket| {
        hub.join_room(socket, "lobby").unwrap();
        let name = format!("guest-{}", hub.connection_count());
        hub.set_name(socket, &name).unwrap();
    });
    let url = common::serve(hub.clone()).await;
    let mut ann = open(&url).await;
    let mut bob = open(&url).await;

    // Bob never asked to join, yet hears the lobby, and under his name.
    send(
        &mut ann,
        json!({"event": "chat", "room": "lobby", "data": "hi"}),
    )
    .await;
    let heard = next_event(&mut bob).await;
    assert_eq!(heard["event"], "chat", "{heard}");
    assert_eq!(heard["room"], "lobby", "{heard}");
    assert_eq!(heard["from_name"], "guest-1", "{heard}");

    send(
        &mut bob,
        json!({"event": "users", "room": "lobby", "ack": 1}),
    )
    .await;
    let users = next_event(&mut bob).await;
    let mut names: Vec<&str> = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|user| user["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["guest-1", "guest-2"], "{users}");
}

#[tokio::test]
async fn leave_room_and_bad_names_are_answered() {
    let hub = Hub::new(HubConfig::default());
    let url = common::serve(hub.clone()).await;
    let _ann = open(&url).await;
    let socket = hub.sockets().pop().expect("one connection");

    assert_eq!(hub.join_room(&socket, "lobby").unwrap(), 1);
    assert_eq!(hub.join_room(&socket, "lobby").unwrap(), 1, "twice is once");
    assert_eq!(socket.rooms(), ["lobby"]);
    assert!(hub.leave_room(&socket, "lobby"));
    assert!(!hub.leave_room(&socket, "lobby"), "not a member any more");

    let refused = hub.join_room(&socket, "").unwrap_err();
    assert_eq!(refused.code, "invalid_room");
    let refused = hub.set_name(&socket, "evil\u{202e}name").unwrap_err();
    assert_eq!(refused.code, "invalid_name");
    assert_eq!(socket.name(), None, "a refused name changes nothing");
}

#[tokio::test]
async fn the_room_limit_holds_for_the_server_too() {
    let mut config = HubConfig::default();
    config.max_rooms_per_connection(1);
    let hub = Hub::new(config);
    let url = common::serve(hub.clone()).await;
    let _ann = open(&url).await;
    let socket = hub.sockets().pop().expect("one connection");
    hub.join_room(&socket, "one").unwrap();
    let refused = hub.join_room(&socket, "two").unwrap_err();
    assert_eq!(refused.code, "too_many_rooms");
}
