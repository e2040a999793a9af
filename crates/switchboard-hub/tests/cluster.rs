//! Two hubs joined by an in-memory `ClusterAdapter`, with real loopback
//! clients: what the hub hands to the adapter, and what it does with what
//! the adapter hands back. (The Redis adapter is tested end to end in
//! tests/e2e/test_cluster.py.)

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_hub::{ClusterAdapter, ClusterMessage, Hub, HubConfig, PresenceChange, Route};
use switchboard_net::{accept, connect_with, Config, ConnectOptions, Message, Reader, Writer};
use tokio::net::TcpListener;

const WITHIN: Duration = Duration::from_secs(5);

/// One hand-over: the route (as debug text), the payload, the nodes.
type Sent = (String, Vec<u8>, Vec<String>);

/// Hands everything straight to the other hub, and records what was sent.
struct Link {
    name: &'static str,
    peer: OnceLock<Hub>,
    sent: Mutex<Vec<Sent>>,
}

impl ClusterAdapter for Link {
    fn send(&self, message: &ClusterMessage<'_>) -> bool {
        let nodes = message.nodes.iter().map(|n| n.to_string()).collect();
        let route = format!("{:?}", message.route);
        self.sent
            .lock()
            .unwrap()
            .push((route, message.payload.to_vec(), nodes));
        let peer = self.peer.get().unwrap();
        peer.deliver_remote(message.route, message.payload).unwrap();
        true
    }

    fn presence(&self, change: PresenceChange) {
        let peer = self.peer.get().unwrap();
        match change {
            PresenceChange::Update(user) => peer.remote_update(self.name, user),
            PresenceChange::Remove(id) => peer.remote_remove(self.name, &id),
        }
    }
}

/// Two linked hubs, each serving on its own port.
async fn pair() -> ((Hub, String, Arc<Link>), (Hub, String, Arc<Link>)) {
    let mut config = HubConfig::default();
    config.userlist_interval(Duration::from_millis(10));
    let a = Hub::new(config.clone());
    let b = Hub::new(config);
    let link_a = Arc::new(Link {
        name: "a",
        peer: OnceLock::new(),
        sent: Mutex::default(),
    });
    let link_b = Arc::new(Link {
        name: "b",
        peer: OnceLock::new(),
        sent: Mutex::default(),
    });
    let _ = link_a.peer.set(b.clone());
    let _ = link_b.peer.set(a.clone());
    assert!(a.set_cluster(link_a.clone()));
    assert!(b.set_cluster(link_b.clone()));
    assert!(!a.set_cluster(link_a.clone()), "set once");
    // Each knows the other node, with no connections yet.
    a.remote_sync("b", Vec::new());
    b.remote_sync("a", Vec::new());
    let url_a = serve(a.clone()).await;
    let url_b = serve(b.clone()).await;
    ((a, url_a, link_a), (b, url_b, link_b))
}

async fn serve(hub: Hub) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (stream, remote) = listener.accept().await.unwrap();
            let hub = hub.clone();
            tokio::spawn(async move {
                let mut config = Config::default();
                config.protocols([
                    switchboard_hub::JSON_PROTOCOL,
                    switchboard_hub::MSGPACK_PROTOCOL,
                ]);
                if let Ok(Some(accepted)) = accept(stream, &config, &hub).await {
                    hub.serve(accepted, Some(remote)).await;
                }
            });
        }
    });
    url
}

struct Client {
    reader: Reader,
    writer: Writer,
    id: String,
    msgpack: bool,
}

impl Client {
    async fn open(url: &str, msgpack: bool) -> Client {
        let mut options = ConnectOptions::default();
        if msgpack {
            options = options.protocol(switchboard_hub::MSGPACK_PROTOCOL);
        }
        let (socket, _) = connect_with(url, options).await.unwrap();
        let (reader, writer) = socket.split();
        let mut client = Client {
            reader,
            writer,
            id: String::new(),
            msgpack,
        };
        let ready = client.next().await;
        client.id = ready["data"]["id"].as_str().unwrap().to_owned();
        client
    }

    async fn send(&self, value: Value) {
        self.writer
            .send(Message::text(value.to_string()))
            .await
            .unwrap();
    }

    async fn next(&mut self) -> Value {
        let message = tokio::time::timeout(WITHIN, self.reader.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match message {
            Message::Text(text) => {
                assert!(!self.msgpack, "text frame to a MessagePack client");
                serde_json::from_str(text.as_str()).unwrap()
            }
            Message::Binary(bytes) => {
                assert!(self.msgpack, "binary frame to a JSON client");
                switchboard_hub::Codec::MsgPack.decode(&bytes).unwrap()
            }
        }
    }

    /// The next message that is not a user list.
    async fn event(&mut self) -> Value {
        loop {
            let message = self.next().await;
            if message["event"] != "userlist" {
                return message;
            }
        }
    }

    async fn request(&mut self, mut value: Value) -> Value {
        value["ack"] = json!("r");
        self.send(value).await;
        loop {
            let message = self.event().await;
            if message["event"] == "ack" && message["ack"] == "r" {
                return message;
            }
        }
    }
}

#[tokio::test]
async fn room_messages_cross_once_as_json_and_are_framed_per_encoding() {
    let ((a, url_a, link_a), (_b, url_b, _)) = pair().await;
    let mut sender = Client::open(&url_a, false).await;
    let mut json_member = Client::open(&url_b, false).await;
    let mut packed_member = Client::open(&url_b, true).await;
    json_member
        .request(json!({"event": "join", "room": "lobby"}))
        .await;
    let reply = packed_member
        .request(json!({"event": "join", "room": "lobby"}))
        .await;
    assert_eq!(reply["data"], json!({"room": "lobby", "members": 2}));
    // B's presence reached A synchronously through the link.
    let users: Vec<Value> = a.users(Some("lobby"), 10);
    assert_eq!(users.len(), 2);

    link_a.sent.lock().unwrap().clear();
    let reply = sender
        .request(json!({"event": "chat", "room": "lobby", "data": {"x": [1, 2.5]}}))
        .await;
    assert_eq!(
        reply["data"],
        json!({"delivered": 2}),
        "the two members on B"
    );
    let expected =
        json!({"event": "chat", "from": sender.id, "room": "lobby", "data": {"x": [1, 2.5]}});
    assert_eq!(json_member.event().await, expected);
    assert_eq!(packed_member.event().await, expected);

    let sent = link_a.sent.lock().unwrap();
    assert_eq!(
        sent.len(),
        1,
        "one hand-over for the node, not one per member"
    );
    let (route, payload, nodes) = &sent[0];
    assert_eq!(
        route,
        &format!(
            "{:?}",
            Route::Room {
                room: "lobby",
                except: None
            }
        )
    );
    assert_eq!(serde_json::from_slice::<Value>(payload).unwrap(), expected);
    assert_eq!(nodes, &["b".to_owned()]);
}

#[tokio::test]
async fn direct_messages_presence_and_users_span_both_hubs() {
    let ((a, url_a, link_a), (b, url_b, _)) = pair().await;
    let mut alice = Client::open(&(url_a + "?name=alice"), false).await;
    let mut bob = Client::open(&url_b, false).await;
    let reply = alice
        .request(json!({"event": "whisper", "to": bob.id, "data": "hi"}))
        .await;
    assert_eq!(reply["data"], json!({"delivered": 1}));
    assert_eq!(
        bob.event().await,
        json!({"event": "whisper", "from": alice.id, "from_name": "alice", "to": bob.id, "data": "hi"})
    );
    let reply = alice
        .request(json!({"event": "whisper", "to": "nobody", "data": "hi"}))
        .await;
    assert_eq!(reply["error"]["code"], "unknown_target");

    let reply = bob.request(json!({"event": "users"})).await;
    assert_eq!(reply["data"].as_array().unwrap().len(), 2);
    bob.request(json!({"event": "rename", "data": {"name": "bob"}}))
        .await;
    bob.request(json!({"event": "join", "room": "r"})).await;
    alice.request(json!({"event": "join", "room": "r"})).await;
    // Alice's list, from her hub, names Bob as renamed on his.
    let mut lists = Vec::new();
    let want = {
        let mut entries = vec![
            json!({"id": alice.id, "name": "alice"}),
            json!({"id": bob.id, "name": "bob"}),
        ];
        entries.sort_by(|x, y| x["id"].as_str().cmp(&y["id"].as_str()));
        Value::Array(entries)
    };
    while lists.last() != Some(&want) {
        let message = alice.next().await;
        if message["event"] == "userlist" {
            lists.push(message["data"].clone());
        }
    }
    assert_eq!(a.remote_stats().users, 1);
    drop(bob);
    tokio::time::timeout(WITHIN, async {
        while a.remote_stats().users != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("bob's disconnect reached hub a");
    assert!(link_a
        .sent
        .lock()
        .unwrap()
        .iter()
        .all(|(_, _, nodes)| nodes == &["b".to_owned()]));

    b.remote_drop("a");
    assert_eq!(
        b.users(None, 10).len(),
        0,
        "hub b forgot hub a's connections"
    );
}

#[tokio::test]
async fn without_an_adapter_nothing_is_forwarded() {
    let hub = Hub::new(HubConfig::default());
    assert!(!hub.is_clustered());
    assert_eq!(
        hub.emit_to("nobody", "x", &Value::Null),
        Err(switchboard_hub::SendError::Gone)
    );
    assert_eq!(hub.to("lobby").emit("x", &Value::Null), 0);
    // Remote state given to an unclustered hub is kept but not consulted.
    hub.remote_sync("elsewhere", Vec::new());
    assert_eq!(hub.users(None, 10).len(), 0);
}
