//! The hub examples (`examples/user_registry.rs`, `examples/chat_exercises.rs`)
//! served on loopback port 0 and driven by a raw WebSocket client speaking
//! the JSON wire format (`docs/PROTOCOL.md`) and by the Rust client
//! (`switchboard_client`).

#[allow(dead_code)]
#[path = "../examples/chat_exercises.rs"]
mod chat_exercises;
#[allow(dead_code)]
#[path = "../examples/user_registry.rs"]
mod user_registry;

use std::time::Duration;

use serde_json::{json, Value};
use switchboard_client::{Client, ClientError, ClientOptions, Incoming, To};
use switchboard_net::{connect, Event, Message, WebSocket};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// Bound on waiting for anything that should happen.
const WITHIN: Duration = Duration::from_secs(10);

// ---- servers ----------------------------------------------------------------

/// Serves `user_registry` on a fresh port; returns its URL (no query).
async fn start_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(user_registry::run(listener, user_registry::build_hub()));
    url
}

/// Serves `chat_exercises` on a fresh port until `stop` is sent; returns its
/// URL and the server's task.
async fn start_chat() -> (
    String,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let hub = chat_exercises::build_hub();
    let server = tokio::spawn(chat_exercises::run(listener, hub, shutdown));
    (url, stop, server)
}

// ---- the raw client -----------------------------------------------------------

/// Connects, reads `ready` and returns the socket and its connection id.
async fn open(url: &str) -> (WebSocket, String) {
    let (mut socket, _) = tokio::time::timeout(WITHIN, connect(url))
        .await
        .expect("connect in time")
        .expect("connect");
    let ready = recv(&mut socket).await;
    assert_eq!(ready["event"], "ready", "{ready}");
    (socket, ready["data"]["id"].as_str().unwrap().to_owned())
}

/// The next message, as JSON.
async fn recv(socket: &mut WebSocket) -> Value {
    let message = tokio::time::timeout(WITHIN, socket.recv())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("no error");
    serde_json::from_slice(message.payload()).unwrap()
}

async fn send(socket: &mut WebSocket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// A round trip through the hub's built-in `users`: asserts that nothing
/// was queued for this socket before its answer.
async fn assert_nothing_more(socket: &mut WebSocket) {
    send(socket, json!({ "event": "users", "ack": "sync" })).await;
    let next = recv(socket).await;
    assert_eq!(
        (&next["event"], &next["ack"]),
        (&json!("ack"), &json!("sync")),
        "{next}"
    );
}

/// How the hub closed the connection, after reading what was left.
async fn close_code(socket: &mut WebSocket) -> Option<u16> {
    let closed = tokio::time::timeout(WITHIN, async {
        loop {
            if let Event::Closed(info) = socket.next_event().await.unwrap() {
                return info;
            }
        }
    });
    let info = closed.await.expect("closed in time");
    info.received
        .and_then(|frame| frame.code)
        .map(|code| code.0)
}

/// The ids of a user list's entries.
fn ids(list: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

fn sorted(mut ids: Vec<&str>) -> Vec<&str> {
    ids.sort_unstable();
    ids
}

// ---- the Rust client ----------------------------------------------------------

async fn client(url: &str) -> Client {
    tokio::time::timeout(WITHIN, Client::connect(url, ClientOptions::default()))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// The events of these names, in order, as they come.
fn listen(client: &Client, events: &[&str]) -> mpsc::UnboundedReceiver<Incoming> {
    let (seen, incoming) = mpsc::unbounded_channel();
    for event in events {
        let seen = seen.clone();
        client.on(event, move |message| {
            let _ = seen.send(message.clone());
        });
    }
    incoming
}

/// The next event named `event`, skipping the others listened to.
async fn expect(incoming: &mut mpsc::UnboundedReceiver<Incoming>, event: &str) -> Incoming {
    let next = async {
        loop {
            let message = incoming.recv().await.expect("the client is running");
            if message.event == event {
                return message;
            }
        }
    };
    tokio::time::timeout(WITHIN, next)
        .await
        .unwrap_or_else(|_| panic!("no {event:?} within {WITHIN:?}"))
}

// ---- user_registry ------------------------------------------------------------

#[tokio::test]
async fn registry_sends_initial_data_after_ready_and_the_userlist_on_join_and_leave() {
    let url = start_registry().await;
    let (mut ann, ann_id) = open(&format!("{url}?user=ann")).await;
    let initial = recv(&mut ann).await;
    assert_eq!(initial["event"], "initialData");
    let entry = json!({ "id": ann_id, "user": "ann" });
    assert_eq!(
        initial["data"],
        json!({ "you": entry, "userlist": [entry] })
    );
    let userlist = recv(&mut ann).await;
    assert_eq!(
        (&userlist["event"], &userlist["data"]),
        (&json!("userlist"), &json!([entry]))
    );

    // A second user: both get the complete list.
    let (mut bob, bob_id) = open(&format!("{url}?user=bob")).await;
    let initial = recv(&mut bob).await;
    assert_eq!(initial["event"], "initialData");
    assert_eq!(
        initial["data"]["you"],
        json!({ "id": bob_id, "user": "bob" })
    );
    let both = sorted(vec![ann_id.as_str(), bob_id.as_str()]);
    assert_eq!(ids(&initial["data"]["userlist"]), both);
    for socket in [&mut ann, &mut bob] {
        let userlist = recv(socket).await;
        assert_eq!(userlist["event"], "userlist");
        assert_eq!(ids(&userlist["data"]), both);
    }

    // Bob leaves: Ann gets the list without him.
    drop(bob);
    let userlist = recv(&mut ann).await;
    assert_eq!(
        (&userlist["event"], &userlist["data"]),
        (&json!("userlist"), &json!([entry]))
    );
    assert_nothing_more(&mut ann).await;
}

#[tokio::test]
async fn registry_update_user_answers_the_sender_and_everyone() {
    let url = start_registry().await;
    let (mut ann, ann_id) = open(&format!("{url}?user=ann")).await;
    let (mut bob, _) = open(&format!("{url}?user=bob")).await;
    // initialData, and the lists of the two joins.
    for _ in 0..3 {
        recv(&mut ann).await;
    }
    for _ in 0..2 {
        recv(&mut bob).await;
    }

    // The id is not the client's to change.
    let update = json!({ "status": "away", "id": "forged" });
    send(
        &mut ann,
        json!({ "event": "updateUser", "data": update, "ack": 1 }),
    )
    .await;
    let updated = json!({ "id": ann_id, "user": "ann", "status": "away" });
    let userlist = recv(&mut ann).await;
    assert_eq!(userlist["event"], "userlist");
    assert!(userlist["data"].as_array().unwrap().contains(&updated));
    assert_eq!(
        recv(&mut ann).await,
        json!({ "event": "ack", "ack": 1, "data": updated })
    );
    let userlist = recv(&mut bob).await;
    assert_eq!(userlist["event"], "userlist");
    assert!(userlist["data"].as_array().unwrap().contains(&updated));

    // Not an object: the sender's ack says so, nobody else hears of it.
    send(
        &mut ann,
        json!({ "event": "updateUser", "data": 7, "ack": 2 }),
    )
    .await;
    let refused = recv(&mut ann).await;
    assert_eq!(refused["ack"], 2);
    assert_eq!(refused["error"]["code"], "invalid_user");
    assert_nothing_more(&mut bob).await;
}

#[tokio::test]
async fn registry_refuses_a_connection_without_a_user_with_401() {
    let url = start_registry().await;
    for url in [url.clone(), format!("{url}?user=")] {
        let refused = tokio::time::timeout(WITHIN, connect(&url))
            .await
            .expect("an answer in time")
            .expect_err("refused");
        let status = refused.handshake_error().map(|error| error.status());
        assert_eq!(status, Some(401), "{url}: {refused}");
    }
    let refused = Client::connect(&url, ClientOptions::default()).await;
    assert!(
        matches!(refused, Err(ClientError::Refused { status: 401, .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn registry_with_the_rust_client() {
    let url = start_registry().await;
    let ann = client(&format!("{url}?user=ann")).await;
    // Registered after connect: what came right after `ready` still arrives.
    let mut seen = listen(&ann, &["initialData", "userlist"]);
    let initial = expect(&mut seen, "initialData").await;
    let ann_id = ann.id().unwrap();
    assert_eq!(initial.data["you"], json!({ "id": ann_id, "user": "ann" }));
    assert_eq!(
        ids(&expect(&mut seen, "userlist").await.data),
        [ann_id.as_str()]
    );

    let reply = ann
        .emit_with_ack("updateUser", &json!({ "status": "busy" }), To::Server)
        .await
        .unwrap();
    assert_eq!(
        reply,
        json!({ "id": ann_id, "user": "ann", "status": "busy" })
    );
    let userlist = expect(&mut seen, "userlist").await;
    assert_eq!(userlist.data, json!([reply]));

    let refused = ann
        .emit_with_ack("updateUser", &json!("busy"), To::Server)
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Server { code, .. }) if code == "invalid_user"),
        "{refused:?}"
    );

    let bob = client(&format!("{url}?user=bob")).await;
    let bob_id = bob.id().unwrap();
    let userlist = expect(&mut seen, "userlist").await;
    assert_eq!(
        ids(&userlist.data),
        sorted(vec![ann_id.as_str(), bob_id.as_str()])
    );
    bob.close().await;
    assert_eq!(expect(&mut seen, "userlist").await.data, json!([reply]));
    ann.close().await;
}

// ---- chat_exercises -------------------------------------------------------------

/// Connects as `name`; reads `ready` and the `online` list (returned).
async fn join_chat(url: &str, name: &str) -> (WebSocket, String, Value) {
    let (mut socket, id) = open(&format!("{url}?name={name}")).await;
    let online = recv(&mut socket).await;
    assert_eq!(online["event"], "online", "{online}");
    (socket, id, online["data"].clone())
}

#[tokio::test]
async fn chat_announces_arrivals_and_departures_and_lists_who_is_online() {
    let (url, _stop, _server) = start_chat().await;
    let (mut ann, ann_id, online) = join_chat(&url, "ann").await;
    assert_eq!(online, json!([{ "id": ann_id, "name": "ann" }]));

    let (mut bob, bob_id, online) = join_chat(&url, "bob").await;
    assert_eq!(ids(&online), sorted(vec![ann_id.as_str(), bob_id.as_str()]));
    let bob_entry = json!({ "id": bob_id, "name": "bob" });
    assert!(online.as_array().unwrap().contains(&bob_entry));
    let joined = json!({ "event": "joined", "broadcast": true, "data": bob_entry });
    assert_eq!(recv(&mut ann).await, joined);
    // The newcomer is not told of its own arrival.
    assert_nothing_more(&mut bob).await;

    drop(bob);
    let left = json!({ "event": "left", "broadcast": true, "data": bob_entry });
    assert_eq!(recv(&mut ann).await, left);
}

#[tokio::test]
async fn chat_messages_and_typing_go_to_everyone_but_the_sender() {
    let (url, _stop, _server) = start_chat().await;
    let (mut ann, ann_id, _) = join_chat(&url, "ann").await;
    let (mut bob, _, _) = join_chat(&url, "bob").await;
    let (mut cat, _, _) = join_chat(&url, "cat").await;
    for _ in 0..2 {
        assert_eq!(recv(&mut ann).await["event"], "joined");
    }
    assert_eq!(recv(&mut bob).await["event"], "joined");

    send(&mut ann, json!({ "event": "typing", "data": true })).await;
    send(
        &mut ann,
        json!({ "event": "chat", "data": { "text": "hi" }, "ack": 1 }),
    )
    .await;
    assert_eq!(
        recv(&mut ann).await,
        json!({ "event": "ack", "ack": 1, "data": { "delivered": 2 } })
    );
    let from = |extra: Value| {
        let mut data = json!({ "id": ann_id, "name": "ann" });
        data.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        data
    };
    for socket in [&mut bob, &mut cat] {
        let typing = recv(socket).await;
        assert_eq!(typing["event"], "typing");
        assert_eq!(typing["data"], from(json!({ "typing": true })));
        let chat = recv(socket).await;
        assert_eq!(chat["event"], "chat");
        assert_eq!(chat["data"], from(json!({ "text": "hi" })));
    }
    // Neither came back to Ann.
    assert_nothing_more(&mut ann).await;

    // No text; and an event addressed past the server, which the hub would
    // otherwise relay on top of the handler's own send.
    send(&mut ann, json!({ "event": "chat", "data": {}, "ack": 2 })).await;
    assert_eq!(recv(&mut ann).await["error"]["code"], "invalid_text");
    let relayed = json!({ "event": "chat", "broadcast": true, "data": { "text": "x" }, "ack": 3 });
    send(&mut ann, relayed).await;
    assert_eq!(recv(&mut ann).await["error"]["code"], "invalid_target");
    assert_nothing_more(&mut bob).await;
    assert_nothing_more(&mut cat).await;
}

#[tokio::test]
async fn chat_private_messages_reach_only_their_target() {
    let (url, _stop, _server) = start_chat().await;
    let (mut ann, ann_id, _) = join_chat(&url, "ann").await;
    let (mut bob, bob_id, _) = join_chat(&url, "bob").await;
    let (mut cat, _, _) = join_chat(&url, "cat").await;
    for _ in 0..2 {
        recv(&mut ann).await;
    }
    recv(&mut bob).await;

    let private = json!({ "to": bob_id, "text": "psst" });
    send(
        &mut ann,
        json!({ "event": "private", "data": private, "ack": 1 }),
    )
    .await;
    assert_eq!(
        recv(&mut ann).await,
        json!({ "event": "ack", "ack": 1, "data": { "delivered": 1 } })
    );
    let received = recv(&mut bob).await;
    assert_eq!(received["event"], "private");
    assert_eq!(
        received["data"],
        json!({ "id": ann_id, "name": "ann", "text": "psst" })
    );
    assert_nothing_more(&mut cat).await;
    assert_nothing_more(&mut ann).await;

    let nobody = json!({ "to": "nobody", "text": "psst" });
    send(
        &mut ann,
        json!({ "event": "private", "data": nobody, "ack": 2 }),
    )
    .await;
    assert_eq!(recv(&mut ann).await["error"]["code"], "unknown_target");
}

#[tokio::test]
async fn chat_with_the_rust_client() {
    let (url, _stop, _server) = start_chat().await;
    let ann = client(&format!("{url}?name=ann")).await;
    let mut ann_seen = listen(&ann, &["online", "joined", "left", "chat", "private"]);
    let ann_id = ann.id().unwrap();
    let online = expect(&mut ann_seen, "online").await;
    assert_eq!(online.data, json!([{ "id": ann_id, "name": "ann" }]));

    let bob = client(&format!("{url}?name=bob")).await;
    let mut bob_seen = listen(&bob, &["online", "typing", "chat", "private"]);
    let bob_id = bob.id().unwrap();
    assert_eq!(ids(&expect(&mut bob_seen, "online").await.data).len(), 2);
    let joined = expect(&mut ann_seen, "joined").await;
    assert_eq!(joined.data, json!({ "id": bob_id, "name": "bob" }));

    // A nickname changed with the hub's `rename` shows in later messages.
    ann.rename("anna").await.unwrap();
    ann.emit("typing", &json!(true), To::Server).await.unwrap();
    let typing = expect(&mut bob_seen, "typing").await;
    assert_eq!(
        typing.data,
        json!({ "id": ann_id, "name": "anna", "typing": true })
    );
    let reply = ann
        .emit_with_ack("chat", &json!({ "text": "hello" }), To::Server)
        .await
        .unwrap();
    assert_eq!(reply, json!({ "delivered": 1 }));
    let chat = expect(&mut bob_seen, "chat").await;
    assert_eq!(
        chat.data,
        json!({ "id": ann_id, "name": "anna", "text": "hello" })
    );

    let private = json!({ "to": ann_id, "text": "psst" });
    bob.emit_with_ack("private", &private, To::Server)
        .await
        .unwrap();
    let received = expect(&mut ann_seen, "private").await;
    assert_eq!(
        received.data,
        json!({ "id": bob_id, "name": "bob", "text": "psst" })
    );

    bob.close().await;
    let left = expect(&mut ann_seen, "left").await;
    assert_eq!(left.data["id"], bob_id);
    // Ann's own chat never came back to her.
    let echoed = std::iter::from_fn(|| ann_seen.try_recv().ok()).find(|m| m.event == "chat");
    assert_eq!(echoed, None);
    ann.close().await;
}

#[tokio::test]
async fn chat_shuts_down_gracefully() {
    let (url, stop, server) = start_chat().await;
    let (mut ann, _, _) = join_chat(&url, "ann").await;
    stop.send(()).unwrap();
    assert_eq!(recv(&mut ann).await, json!({ "event": "end" }));
    assert_eq!(close_code(&mut ann).await, Some(1001));
    let result = tokio::time::timeout(WITHIN, server)
        .await
        .expect("the server ends in time");
    result.expect("no panic").expect("no error");
    // The port is closed.
    assert!(connect(&url).await.is_err());
}
