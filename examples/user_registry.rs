//! The server of the *websockets-raw* chat on the hub: a user list kept by
//! the application.
//!
//! ```text
//! cargo run --example user_registry -- 127.0.0.1:9081
//! ```
//!
//! Connect to `ws://127.0.0.1:9081/ws?user=alice`; without `?user=` the
//! upgrade is refused with 401. Then:
//!
//! - the newcomer gets `initialData` (`{"you", "userlist"}`) right after
//!   its `ready`, and everyone gets the complete `userlist` (as an array
//!   of `{"id", "user", …}`; it names no room);
//! - `updateUser` with an object merges it into the sender's entry: the
//!   sender's ack is its new entry (websockets-raw's `replyOne`), and
//!   everyone gets the new `userlist` (its `replyAll`);
//! - when a connection leaves, everyone gets the `userlist` without it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map, Value};
use switchboard_hub::net::{accept, Config};
use switchboard_hub::{Hub, HubConfig, Meta, RequestError};
use tokio::net::TcpListener;

/// An entry of the user list: `{"id", "user", …}`.
type Entry = Map<String, Value>;

/// Each connection's entry, by connection id.
#[derive(Clone, Default)]
struct Users(Arc<Mutex<BTreeMap<String, Entry>>>);

impl Users {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sends the complete list to everyone. Called with the lock held, so
/// that two changes at once cannot send their lists in the wrong order.
fn send_userlist(hub: &Hub, users: &BTreeMap<String, Entry>) {
    hub.emit_all("userlist", &json!(users.values().collect::<Vec<_>>()));
}

/// The hub with the application's authorizer, hooks and handler.
pub fn build_hub() -> Hub {
    let hub = Hub::new(HubConfig::default());
    // Decided once per upgrade, before the 101: no user, no connection.
    hub.set_authorizer(|request| match request.query_param("user") {
        Some(user) if !user.is_empty() => Ok(Meta::from([("user".to_owned(), user)])),
        _ => Err((401, "?user= is required".to_owned())),
    });

    let users = Users::default();
    let list = users.clone();
    hub.on_connect(move |hub, socket| {
        let id = socket.id().to_string();
        let mut entry = Entry::new();
        entry.insert("id".into(), json!(id));
        entry.insert("user".into(), json!(socket.meta().get("user")));
        let mut users = list.lock();
        users.insert(id, entry.clone());
        let userlist: Vec<&Entry> = users.values().collect();
        let _ = socket.emit(
            "initialData",
            &json!({ "you": entry, "userlist": userlist }),
        );
        send_userlist(hub, &users);
    });

    let list = users.clone();
    hub.on("updateUser", move |cx| {
        let Value::Object(changes) = cx.data else {
            return Err(RequestError::new("invalid_user", "send an object"));
        };
        let id = cx.socket.id().to_string();
        let mut users = list.lock();
        let entry = users.entry(id.clone()).or_default();
        entry.extend(changes.clone());
        // The id is the hub's, not the client's to change.
        entry.insert("id".into(), json!(id));
        let reply = Value::Object(entry.clone());
        send_userlist(cx.hub, &users);
        Ok(reply)
    });

    hub.on_disconnect(move |hub, socket| {
        let mut users = users.lock();
        users.remove(socket.id().as_str());
        send_userlist(hub, &users);
    });
    hub
}

/// Accepts connections on `listener` and runs each in the hub, in the task
/// that accepted it.
pub async fn run(listener: TcpListener, hub: Hub) -> std::io::Result<()> {
    let config = Config::default();
    loop {
        let (stream, remote) = listener.accept().await?;
        let (hub, config) = (hub.clone(), config.clone());
        tokio::spawn(async move {
            if let Ok(Some(accepted)) = accept(stream, &config, &hub).await {
                hub.serve(accepted, Some(remote)).await;
            }
        });
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9081".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/ws?user=NAME", listener.local_addr()?);
    run(listener, build_hub()).await
}
