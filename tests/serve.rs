//! `switchboard serve` as a real process, driven by our own WebSocket client
//! (`switchboard_net::connect`): routing to a room, one connection and
//! everyone, acks, user lists, the message size limit, the connection limit,
//! and graceful shutdown on SIGTERM.
//!
//! Every server runs on a port of the system's choosing and is killed by PID
//! when its handle drops; every wait is bounded.

mod process;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_net::{connect, Event, Message, WebSocket};

use process::Serve;

/// Bound on waiting for something that should happen.
const WITHIN: Duration = Duration::from_secs(5);
/// How long to listen for something that should not happen.
const QUIET: Duration = Duration::from_millis(300);

/// A hub connection that has received its `ready`.
struct Hub {
    ws: WebSocket,
    id: String,
}

impl Hub {
    async fn connect(url: &str) -> Hub {
        let (ws, _) = tokio::time::timeout(WITHIN, connect(url))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        let mut hub = Hub {
            ws,
            id: String::new(),
        };
        let ready = hub.recv().await;
        assert_eq!(ready["event"], "ready", "{ready}");
        hub.id = ready["data"]["id"]
            .as_str()
            .expect("ready has an id")
            .to_owned();
        hub
    }

    async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// The next message, user lists included.
    async fn recv(&mut self) -> Value {
        self.try_recv(WITHIN).await.expect("no message in time")
    }

    /// The next message within `wait`, or `None`.
    async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let message = tokio::time::timeout(wait, self.ws.recv()).await.ok()?;
        let message = message.expect("connection closed").expect("receive");
        Some(serde_json::from_slice(message.payload()).expect("a JSON message"))
    }

    /// The next message that is not a `userlist`.
    async fn next(&mut self) -> Value {
        loop {
            let message = self.recv().await;
            if message["event"] != "userlist" {
                return message;
            }
        }
    }

    /// The next `userlist`, skipping anything else.
    async fn next_userlist(&mut self) -> Value {
        loop {
            let message = self.recv().await;
            if message["event"] == "userlist" {
                return message;
            }
        }
    }

    /// Sends with an ack id and returns the ack, which must be the next
    /// message other than a user list.
    async fn request(&mut self, message: Value) -> Value {
        self.send(message).await;
        let reply = self.next().await;
        assert_eq!(reply["event"], "ack", "{reply}");
        reply
    }

    async fn join(&mut self, room: &str) {
        let reply = self
            .request(json!({"event": "join", "room": room, "ack": "join"}))
            .await;
        assert_eq!(reply["data"]["room"], room, "{reply}");
    }

    /// What arrives within `QUIET`, user lists left out.
    async fn rest(&mut self) -> Vec<Value> {
        let mut rest = Vec::new();
        while let Some(message) = self.try_recv(QUIET).await {
            if message["event"] != "userlist" {
                rest.push(message);
            }
        }
        rest
    }

    /// Reads until the server closes; the code of its close frame.
    async fn close_code(&mut self) -> Option<u16> {
        let read = async {
            loop {
                match self.ws.next_event().await {
                    Ok(Event::Closed(info)) => return info.received.and_then(|f| f.code),
                    Ok(_) => {}
                    Err(error) => panic!("closed without a close event: {error}"),
                }
            }
        };
        let code = tokio::time::timeout(WITHIN, read)
            .await
            .expect("the server did not close the connection");
        code.map(|code| code.0)
    }
}

async fn clients(server: &Serve, n: usize) -> Vec<Hub> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Hub::connect(&server.ws()).await);
    }
    clients
}

#[tokio::test]
async fn room_message_reaches_every_member_and_the_sender() {
    let server = Serve::start(&[]);
    let mut c = clients(&server, 3).await;
    for client in c.iter_mut() {
        client.join("lobby").await;
    }
    c[0].send(json!({"event": "chat", "room": "lobby", "data": {"text": "hi"}}))
        .await;
    let expected =
        json!({"event": "chat", "from": c[0].id, "room": "lobby", "data": {"text": "hi"}});
    for client in c.iter_mut() {
        assert_eq!(client.next().await, expected);
    }
}

#[tokio::test]
async fn room_message_with_echo_false_skips_the_sender_and_non_members() {
    let server = Serve::start(&[]);
    let mut c = clients(&server, 3).await;
    c[0].join("lobby").await;
    c[1].join("lobby").await;
    let reply = c[0]
        .request(json!({"event": "chat", "room": "lobby", "data": 1, "echo": false, "ack": 2}))
        .await;
    assert_eq!(reply["data"], json!({"delivered": 1}));
    assert_eq!(c[1].next().await["data"], 1);
    assert_eq!(c[0].rest().await, Vec::<Value>::new());
    assert_eq!(c[2].rest().await, Vec::<Value>::new());
}

#[tokio::test]
async fn direct_message_reaches_only_its_target() {
    let server = Serve::start(&[]);
    let mut c = clients(&server, 3).await;
    let to = c[1].id.clone();
    let reply = c[0]
        .request(json!({"event": "whisper", "to": to, "data": "psst", "ack": 1}))
        .await;
    assert_eq!(reply["data"], json!({"delivered": 1}));
    assert_eq!(
        c[1].next().await,
        json!({"event": "whisper", "from": c[0].id, "to": c[1].id, "data": "psst"})
    );
    assert_eq!(c[0].rest().await, Vec::<Value>::new());
    assert_eq!(c[2].rest().await, Vec::<Value>::new());
}

#[tokio::test]
async fn broadcast_reaches_everyone() {
    let server = Serve::start(&[]);
    let mut c = clients(&server, 3).await;
    c[0].send(json!({"event": "announce", "broadcast": true, "data": "all"}))
        .await;
    let expected = json!({"event": "announce", "from": c[0].id, "broadcast": true, "data": "all"});
    for client in c.iter_mut() {
        assert_eq!(client.next().await, expected);
    }
}

#[tokio::test]
async fn ack_is_answered_exactly_once_on_success_and_on_error() {
    let server = Serve::start(&[]);
    let mut a = Hub::connect(&server.ws()).await;
    a.send(json!({"event": "join", "room": "lobby", "ack": 1}))
        .await;
    assert_eq!(
        a.next().await,
        json!({"event": "ack", "ack": 1, "data": {"room": "lobby", "members": 1}})
    );
    assert_eq!(a.rest().await, Vec::<Value>::new());
    a.send(json!({"event": "join", "ack": "two"})).await;
    assert_eq!(
        a.next().await,
        json!({"event": "ack", "ack": "two", "error": {"code": "invalid_room", "message": "\"room\" is required"}})
    );
    assert_eq!(a.rest().await, Vec::<Value>::new());
}

#[tokio::test]
async fn bad_input_is_an_error_event_and_the_connection_stays_open() {
    let server = Serve::start(&[]);
    let mut a = Hub::connect(&server.ws()).await;
    a.send_text("this is not JSON").await;
    assert_eq!(a.next().await["data"]["code"], "invalid_json");
    a.send(json!({"event": "nothing-handles-this"})).await;
    assert_eq!(a.next().await["data"]["code"], "unknown_event");
    let reply = a.request(json!({"event": "users", "ack": 3})).await;
    assert_eq!(reply["data"], json!([{"id": a.id, "name": null}]));
}

#[tokio::test]
async fn userlist_follows_join_rename_and_disconnect() {
    let server = Serve::start(&[]);
    let mut c = clients(&server, 2).await;
    c[0].join("lobby").await;
    c[1].join("lobby").await;
    let mut ids = [c[0].id.clone(), c[1].id.clone()];
    ids.sort();
    let both = c[0].next_userlist().await;
    assert_eq!(both["room"], "lobby");
    let listed: Vec<&str> = both["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);

    c[1].send(json!({"event": "rename", "data": {"name": "bob"}}))
        .await;
    let renamed = c[0].next_userlist().await;
    assert!(renamed["data"]
        .as_array()
        .unwrap()
        .contains(&json!({"id": c[1].id, "name": "bob"})));

    let gone = c.pop().unwrap();
    drop(gone);
    let after = c[0].next_userlist().await;
    assert_eq!(after["data"], json!([{"id": c[0].id, "name": null}]));
}

#[tokio::test]
async fn oversize_message_closes_with_1009_and_others_carry_on() {
    let server = Serve::start(&["--max-message-size", "1024"]);
    let mut c = clients(&server, 3).await;
    for client in c.iter_mut() {
        client.join("r").await;
    }
    let big = format!(
        r#"{{"event":"chat","room":"r","data":"{}"}}"#,
        "x".repeat(2000)
    );
    c[0].send_text(&big).await;
    assert_eq!(c[0].close_code().await, Some(1009));
    c[1].send(json!({"event": "chat", "room": "r", "data": "still here"}))
        .await;
    assert_eq!(c[2].next().await["data"], "still here");
    assert_eq!(c[2].rest().await, Vec::<Value>::new());
}

#[tokio::test]
async fn upgrade_over_max_connections_is_refused_with_503() {
    let server = Serve::start(&["--max-connections", "2"]);
    let _held = clients(&server, 2).await;
    let refused = tokio::time::timeout(WITHIN, connect(&server.ws()))
        .await
        .expect("connect timed out")
        .expect_err("a third connection must be refused");
    let status = refused.handshake_error().map(|e| e.status());
    assert_eq!(status, Some(503), "{refused}");
}

#[tokio::test]
async fn sigterm_sends_end_then_1001_to_every_client_and_exits_0() {
    let mut server = Serve::start(&["--shutdown-timeout", "5"]);
    let mut c = clients(&server, 3).await;
    c[0].join("lobby").await;
    let started = Instant::now();
    process::signal(server.process.pid(), "TERM");
    for client in c.iter_mut() {
        assert_eq!(client.next().await, json!({"event": "end"}));
        assert_eq!(client.close_code().await, Some(1001));
    }
    let status = server.process.wait(Duration::from_secs(10));
    assert!(status.success(), "exit status {status}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        started.elapsed()
    );
    assert!(
        !server.process.log().contains("panicked"),
        "{}",
        server.process.log()
    );
}
