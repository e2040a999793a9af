//! The reconnecting Rust client (`switchboard_client`) against real
//! `switchboard serve` processes: events, acks, reconnection with rooms,
//! subscriptions and the send buffer restored, giving up, dead-peer
//! detection, the server's `end`, and `wss://` with a private CA.

#[path = "../crates/switchboard-net/tests/common/pki.rs"]
mod pki;
mod process;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_client::{Client, ClientError, ClientOptions, Incoming, Reconnect, Status, To};
use tokio::sync::broadcast;

use process::Serve;

/// Default bound on waiting for something that should happen.
const WITHIN: Duration = Duration::from_secs(10);

/// Options for a client that keeps trying for a while, with short delays.
fn patient(name: &str) -> ClientOptions {
    let mut reconnect = Reconnect::default();
    reconnect.attempts = 100;
    reconnect.min_delay = Duration::from_millis(50);
    reconnect.max_delay = Duration::from_millis(200);
    let mut options = ClientOptions::default();
    options.name = Some(name.to_owned());
    options.reconnect = reconnect;
    options
}

async fn connect(url: &str, options: ClientOptions) -> Client {
    tokio::time::timeout(WITHIN, Client::connect(url, options))
        .await
        .expect("connect timed out")
        .expect("connect failed")
}

/// The next event named `event`, skipping others; panics after `within`.
async fn next_event(
    events: &mut broadcast::Receiver<Incoming>,
    event: &str,
    within: Duration,
) -> Incoming {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(incoming) if incoming.event == event => return incoming,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .unwrap_or_else(|_| panic!("no {event:?} event within {within:?}"))
}

/// The texts of the next `count` `chat` events.
async fn chat_texts(events: &mut broadcast::Receiver<Incoming>, count: usize) -> Vec<String> {
    let mut texts = Vec::new();
    while texts.len() < count {
        let chat = next_event(events, "chat", WITHIN).await;
        texts.push(chat.data["text"].as_str().unwrap_or_default().to_owned());
    }
    texts
}

/// A round trip to the server: everything the client sent before has been
/// handled when this returns.
async fn sync(client: &Client) {
    tokio::time::timeout(WITHIN, client.users(None))
        .await
        .expect("users timed out")
        .expect("users failed");
}

#[tokio::test]
async fn two_clients_exchange_events_and_acks() {
    let server = Serve::start(&[]);
    let alice = connect(&server.ws(), patient("alice")).await;
    let bob = connect(&server.ws(), patient("bob")).await;
    let alice_id = alice.id().expect("alice has an id");
    let bob_id = bob.id().expect("bob has an id");
    assert_ne!(alice_id, bob_id);
    assert_eq!(alice.status(), Status::Connected);
    assert_eq!(alice.connection_count(), 1);

    let (heard, mut heard_by_alice) = tokio::sync::mpsc::unbounded_channel();
    alice.on("chat", move |incoming| {
        let _ = heard.send(incoming.clone());
    });
    let mut bob_events = bob.events();
    alice.join("lobby").await.unwrap();
    bob.join("lobby").await.unwrap();
    sync(&alice).await;
    sync(&bob).await;

    let members = alice.users(Some("lobby")).await.unwrap();
    let mut names: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|user| user["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["alice", "bob"]);

    // A room message: acked with the number of recipients (sender included).
    let ack = alice
        .emit_with_ack("chat", &json!({"text": "hi"}), To::Room("lobby".into()))
        .await
        .unwrap();
    assert_eq!(ack, json!({"delivered": 2}));
    let chat = next_event(&mut bob_events, "chat", WITHIN).await;
    assert_eq!(chat.data, json!({"text": "hi"}));
    assert_eq!(chat.room.as_deref(), Some("lobby"));
    assert_eq!(chat.from.as_deref(), Some(alice_id.as_str()));
    assert_eq!(chat.from_name.as_deref(), Some("alice"));

    // A direct message reaches only its target, through `on`.
    bob.emit(
        "chat",
        &json!({"text": "psst"}),
        To::Connection(alice_id.clone()),
    )
    .await
    .unwrap();
    let first = tokio::time::timeout(WITHIN, heard_by_alice.recv()).await;
    assert_eq!(first.unwrap().unwrap().data["text"], "hi");
    let dm = tokio::time::timeout(WITHIN, heard_by_alice.recv()).await;
    let dm = dm.unwrap().unwrap();
    assert_eq!(dm.data["text"], "psst");
    assert_eq!(dm.room, None);
    assert_eq!(dm.from.as_deref(), Some(bob_id.as_str()));

    // Invalid requests come back as server errors with the protocol's codes.
    let error = alice
        .emit_with_ack("nothing-handles-this", &Value::Null, To::Server)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Server { code, .. } if code == "unknown_event"),
        "{error:?}"
    );
    let error = alice
        .emit_with_ack("join", &Value::Null, To::Server)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Server { code, .. } if code == "invalid_room"),
        "{error:?}"
    );
    let error = alice
        .emit_with_ack("chat", &json!("?"), To::Connection("nobody".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Server { code, .. } if code == "unknown_target"),
        "{error:?}"
    );

    alice.close().await;
    assert_eq!(alice.status(), Status::Gone);
    assert_eq!(
        alice.emit("chat", &Value::Null, To::Server).await,
        Err(ClientError::Closed)
    );
    bob.close().await;
}

/// A server that says `ready` and then never answers anything: the ack of
/// an `emit_with_ack` never comes.
#[tokio::test]
async fn an_unanswered_ack_times_out() {
    use switchboard_net::{AcceptAll, Config, Message};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let accepted = switchboard_net::accept(stream, &Config::default(), &AcceptAll)
            .await
            .unwrap()
            .expect("an upgrade");
        let mut socket = accepted.socket;
        let ready = json!({"event": "ready", "data": {"id": "silent1", "name": null}});
        socket.send(Message::text(ready.to_string())).await.unwrap();
        let mut received = Vec::new();
        while let Some(Ok(Message::Text(text))) = socket.recv().await {
            received.push(serde_json::from_str::<Value>(text.as_str()).unwrap());
        }
        received
    });

    let mut options = ClientOptions::default();
    options.ack_timeout = Duration::from_millis(400);
    let client = connect(&format!("ws://127.0.0.1:{port}/ws"), options).await;
    assert_eq!(client.id().as_deref(), Some("silent1"));
    let started = Instant::now();
    let result = client
        .emit_with_ack("question", &json!(42), To::Server)
        .await;
    let elapsed = started.elapsed();
    assert_eq!(result, Err(ClientError::Timeout));
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(1400),
        "timed out after {elapsed:?}"
    );
    assert_eq!(client.status(), Status::Connected);

    client.close().await;
    let received = tokio::time::timeout(WITHIN, silent)
        .await
        .expect("the silent server did not see the close")
        .unwrap();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["event"], "question");
    assert_eq!(received[0]["data"], 42);
    assert!(received[0]["ack"].is_u64(), "{received:?}");
}

/// A server that says `ready`, reads one message and hangs up: the request
/// in flight fails at once instead of waiting for its ack timeout.
#[tokio::test]
async fn a_lost_connection_fails_the_request_in_flight() {
    use switchboard_net::{AcceptAll, Config, Message};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let accepted = switchboard_net::accept(stream, &Config::default(), &AcceptAll)
            .await
            .unwrap()
            .expect("an upgrade");
        let mut socket = accepted.socket;
        let ready = json!({"event": "ready", "data": {"id": "brief1", "name": null}});
        socket.send(Message::text(ready.to_string())).await.unwrap();
        let _ = socket.recv().await;
        // Dropped here, without a close frame; nothing listens any more.
    });

    // No name: the question is the first message the server reads.
    let mut options = ClientOptions::default();
    options.reconnect.attempts = 1;
    options.ack_timeout = Duration::from_secs(30);
    let client = connect(&format!("ws://127.0.0.1:{port}/ws"), options).await;
    let started = Instant::now();
    let result = client
        .emit_with_ack("question", &json!(1), To::Server)
        .await;
    assert_eq!(result, Err(ClientError::Disconnected));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn reconnects_to_a_restarted_server_with_rooms_subscriptions_and_buffer() {
    let mut server = Serve::start(&[]);
    let port = server.port;
    let url = server.ws();
    let alice = connect(&url, patient("alice")).await;
    let mut small = patient("small");
    small.buffer = 2;
    let small = connect(&url, small).await;
    alice.join("lobby").await.unwrap();
    alice.subscribe("/sensors/**").await.unwrap();
    small.join("bounded").await.unwrap();
    sync(&alice).await;
    sync(&small).await;
    let first_id = alice.id();
    let mut alice_events = alice.events();
    let mut small_events = small.events();

    server.process.kill();
    let reconnecting = next_event(&mut alice_events, "reconnecting", WITHIN).await;
    assert_eq!(reconnecting.data["attempt"], 1);
    next_event(&mut small_events, "reconnecting", WITHIN).await;
    assert_eq!(alice.status(), Status::Reconnecting);

    // Sent while the server is down: buffered, sent after reconnecting (to
    // rooms the client is back in, so they come back to it).
    alice
        .emit(
            "chat",
            &json!({"text": "while down 1"}),
            To::Room("lobby".into()),
        )
        .await
        .unwrap();
    let acked = {
        let alice = alice.clone();
        tokio::spawn(async move {
            alice
                .emit_with_ack(
                    "chat",
                    &json!({"text": "while down 2"}),
                    To::Room("lobby".into()),
                )
                .await
        })
    };
    // A buffer of 2 keeps the last two; the dropped request learns it.
    let dropped = {
        let small = small.clone();
        tokio::spawn(async move {
            small
                .emit_with_ack("chat", &json!({"text": "b1"}), To::Room("bounded".into()))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    for text in ["b2", "b3", "b4"] {
        small
            .emit("chat", &json!({"text": text}), To::Room("bounded".into()))
            .await
            .unwrap();
    }
    assert_eq!(
        tokio::time::timeout(WITHIN, dropped)
            .await
            .unwrap()
            .unwrap(),
        Err(ClientError::Dropped)
    );
    // Let the driver take everything into its buffer before the server is back.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let _server = Serve::start_on(port, &[]);
    next_event(&mut alice_events, "ready", WITHIN).await;
    assert_eq!(alice.status(), Status::Connected);
    assert_eq!(alice.connection_count(), 2);
    assert_ne!(alice.id(), first_id, "a new connection has a new id");
    assert_eq!(
        chat_texts(&mut alice_events, 2).await,
        ["while down 1", "while down 2"]
    );
    let ack = tokio::time::timeout(WITHIN, acked).await.unwrap().unwrap();
    assert_eq!(ack, Ok(json!({"delivered": 1})));

    next_event(&mut small_events, "ready", WITHIN).await;
    assert_eq!(small.connection_count(), 2);
    small
        .emit(
            "chat",
            &json!({"text": "marker"}),
            To::Room("bounded".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        chat_texts(&mut small_events, 3).await,
        ["b3", "b4", "marker"]
    );

    // Back in its room and subscribed again: another client reaches it.
    sync(&alice).await;
    let bob = connect(&url, patient("bob")).await;
    bob.emit(
        "chat",
        &json!({"text": "welcome back"}),
        To::Room("lobby".into()),
    )
    .await
    .unwrap();
    let chat = next_event(&mut alice_events, "chat", WITHIN).await;
    assert_eq!(chat.data["text"], "welcome back");
    assert_eq!(chat.from_name.as_deref(), Some("bob"));
    bob.publish("/sensors/hall/motion", vec![json!(1), json!("hall")])
        .await
        .unwrap();
    let address = next_event(&mut alice_events, "address", WITHIN).await;
    assert_eq!(address.path.as_deref(), Some("/sensors/hall/motion"));
    assert_eq!(address.values, [json!(1), json!("hall")]);
    // The name was taken again too.
    let members = bob.users(Some("lobby")).await.unwrap();
    assert_eq!(members[0]["name"], "alice", "{members}");

    for client in [alice, small, bob] {
        client.close().await;
    }
}

#[tokio::test]
async fn gives_up_after_the_last_attempt() {
    let mut server = Serve::start(&[]);
    let mut options = patient("quitter");
    options.reconnect.attempts = 2;
    let client = connect(&server.ws(), options).await;
    let mut events = client.events();
    server.process.kill();

    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.last().map(|e: &Incoming| e.event.as_str()) != Some("reconnection_failed") {
        let incoming = tokio::time::timeout(WITHIN, events.recv())
            .await
            .expect("no event")
            .unwrap();
        seen.push(incoming);
    }
    let names: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["reconnecting", "reconnecting", "reconnection_failed"]
    );
    assert_eq!(seen[0].data["attempt"], 1);
    assert_eq!(seen[1].data["attempt"], 2);
    assert_eq!(seen[2].data["attempts"], 2);
    // The connection was lost, then each attempt was refused.
    assert_eq!(seen[0].data["error"], Value::Null);
    for event in &seen[1..] {
        let error = event.data["error"].as_str().unwrap_or_default();
        assert!(error.contains("refused"), "{:?}", event.data);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.status(), Status::Gone);
    assert_eq!(
        client.emit("chat", &Value::Null, To::Server).await,
        Err(ClientError::Closed)
    );

    // A first connection that never succeeds gives up the same way.
    let mut options = patient("nobody");
    options.reconnect.attempts = 1;
    let refused = format!("ws://127.0.0.1:{}/ws", process::free_port());
    let result = tokio::time::timeout(WITHIN, Client::connect(&refused, options))
        .await
        .unwrap();
    assert!(
        matches!(result.unwrap_err(), ClientError::Unreachable { cause } if cause.contains("refused"))
    );
}

#[tokio::test]
async fn a_frozen_server_is_noticed_and_the_client_comes_back() {
    let mut server = Serve::start(&[]);
    let mut options = patient("watcher");
    options.ping_interval = Duration::from_millis(300);
    options.pong_timeout = Duration::from_millis(300);
    let client = connect(&server.ws(), options).await;
    client.join("lobby").await.unwrap();
    sync(&client).await;
    let mut events = client.events();

    {
        let _frozen = server.process.freeze();
        let started = Instant::now();
        next_event(&mut events, "reconnecting", Duration::from_secs(5)).await;
        let noticed = started.elapsed();
        // Silence for ping_interval, then pong_timeout to answer: ~0.6 s.
        assert!(
            noticed < Duration::from_millis(1500),
            "noticed after {noticed:?}"
        );
        assert_eq!(client.status(), Status::Reconnecting);
        // `_frozen` sends SIGCONT here, also if an assertion failed.
    }

    next_event(&mut events, "ready", WITHIN).await;
    assert_eq!(client.status(), Status::Connected);
    assert_eq!(client.connection_count(), 2);
    sync(&client).await;
    let members = client.users(Some("lobby")).await.unwrap();
    assert_eq!(members.as_array().map(Vec::len), Some(1), "{members}");
    client.close().await;
}

#[tokio::test]
async fn end_from_a_stopping_server_leads_to_a_reconnect() {
    let mut server = Serve::start(&[]);
    let port = server.port;
    let client = connect(&server.ws(), patient("stayer")).await;
    client.join("lobby").await.unwrap();
    sync(&client).await;
    let mut events = client.events();

    let status = server.process.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "serve exited with {status:?}"
    );
    next_event(&mut events, "end", WITHIN).await;
    next_event(&mut events, "reconnecting", WITHIN).await;

    let _server = Serve::start_on(port, &[]);
    next_event(&mut events, "ready", WITHIN).await;
    assert_eq!(client.connection_count(), 2);
    assert_eq!(client.status(), Status::Connected);
    sync(&client).await;
    let members = client.users(Some("lobby")).await.unwrap();
    assert_eq!(members[0]["name"], "stayer", "{members}");
    client.close().await;
}

/// `refresh` against a server with JWT: the new token's expiry comes back,
/// and a token for someone else is refused by the server.
#[tokio::test]
async fn refresh_sends_a_new_token_and_returns_its_expiry() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use std::time::{SystemTime, UNIX_EPOCH};
    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!";
    let server = Serve::start(&["--jwt-secret", SECRET]);
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let token = |sub: &str, exp: u64| {
        encode(&Header::default(), &json!({"sub": sub, "exp": exp}), &key).unwrap()
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let url = format!("{}?token={}", server.ws(), token("u1", now + 60));
    let client = connect(&url, ClientOptions::default()).await;
    let reply = client.refresh(&token("u1", now + 120)).await.unwrap();
    assert_eq!(reply, json!({"expires": now + 120, "left": []}));
    match client.refresh(&token("u2", now + 120)).await {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, "subject_mismatch"),
        other => panic!("{other:?}"),
    }
    client.close().await;
}

#[tokio::test]
async fn wss_with_a_private_ca_and_a_clear_error_with_another() {
    let pki = pki::Pki::new("client test CA");
    let (cert, key) = (pki.cert.to_str().unwrap(), pki.key.to_str().unwrap());
    let server = Serve::start(&["--tls-cert", cert, "--tls-key", key]);
    assert!(server.secure && server.ws().starts_with("wss://"));
    let trust = switchboard_client::tls::client_config_from_ca_file(&pki.ca).unwrap();
    let mut options = patient("alice");
    options.tls = Some(trust.clone());
    let alice = connect(&server.ws(), options).await;
    let mut options = patient("bob");
    options.tls = Some(trust);
    let bob = connect(&server.ws(), options).await;
    let mut bob_events = bob.events();
    let to_bob = To::Connection(bob.id().unwrap());
    let ack = alice
        .emit_with_ack("chat", &json!({"text": "over TLS"}), to_bob)
        .await
        .unwrap();
    assert_eq!(ack, json!({"delivered": 1}));
    assert_eq!(chat_texts(&mut bob_events, 1).await, ["over TLS"]);

    // Trusting another CA: no connection, and the reason says why.
    let other = pki::Pki::new("another CA");
    let mut options = ClientOptions::default();
    options.reconnect.attempts = 0;
    options.tls = Some(switchboard_client::tls::client_config_from_ca_file(&other.ca).unwrap());
    let client = Client::start(&server.ws(), options);
    let mut events = client.events();
    let failed = next_event(&mut events, "reconnection_failed", WITHIN).await;
    let error = failed.data["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("TLS error") && error.contains("certificate"),
        "{:?}",
        failed.data
    );
    assert_eq!(client.status(), Status::Gone);
}
