//! The chat exercises of the Socket.IO tutorial, on the hub.
//!
//! ```text
//! cargo run --example chat_exercises -- 127.0.0.1:9082
//! ```
//!
//! Connect to `ws://127.0.0.1:9082/ws?name=alice` (the nickname; the
//! hub's `rename` changes it later). Send these events to the server (no
//! `room`, `to` or `broadcast`: the server decides where they go):
//!
//! | client sends | who gets what |
//! |---|---|
//! | `chat` `{"text"}` | everyone but the sender: `chat` `{"id", "name", "text"}`; the ack is `{"delivered"}` |
//! | `typing` `true`/`false` | everyone but the sender: `typing` `{"id", "name", "typing"}` |
//! | `private` `{"to": ID, "text"}` | only connection `ID`: `private` `{"id", "name", "text"}` |
//!
//! A newcomer gets `online` (every connection, `{"id", "name"}`, itself
//! included) right after its `ready`; everyone else gets `joined`, and
//! everyone gets `left` when a connection leaves. Ctrl-C sends `end` and a
//! 1001 close to every client and waits for them to go.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_hub::net::{accept, Config};
use switchboard_hub::{Context, Hub, HubConfig, RequestError, SendError, Socket, Target};
use tokio::net::TcpListener;

/// Who a message is from: `{"id", "name"}`.
fn sender(socket: &Socket) -> Value {
    json!({ "id": socket.id().as_str(), "name": socket.name() })
}

/// Refuses an event addressed elsewhere than the server: the hub would
/// relay it as well, and its recipients would get it twice.
fn to_server(cx: &Context<'_>) -> Result<(), RequestError> {
    match cx.target {
        Target::Server => Ok(()),
        _ => Err(RequestError::new("invalid_target", "send it to the server")),
    }
}

/// The sender and a non-empty `text` from the event's data.
fn message(cx: &Context<'_>) -> Result<Value, RequestError> {
    to_server(cx)?;
    match cx.data["text"].as_str() {
        Some(text) if !text.is_empty() => {
            let mut message = sender(cx.socket);
            message["text"] = json!(text);
            Ok(message)
        }
        _ => Err(RequestError::new("invalid_text", "\"text\" is required")),
    }
}

/// The hub with the chat's hooks and handlers.
pub fn build_hub() -> Hub {
    let hub = Hub::new(HubConfig::default());
    hub.on_connect(|hub, socket| {
        // Who is online, for the newcomer; news of it, for the others.
        let online: Vec<Value> = hub.sockets().iter().map(sender).collect();
        let _ = socket.emit("online", &json!(online));
        hub.emit_all_except(socket.id(), "joined", &sender(socket));
    });
    hub.on_disconnect(|hub, socket| {
        hub.emit_all("left", &sender(socket));
    });
    hub.on("chat", |cx| {
        let delivered = cx
            .hub
            .emit_all_except(cx.socket.id(), "chat", &message(cx)?);
        Ok(json!({ "delivered": delivered }))
    });
    hub.on("typing", |cx| {
        to_server(cx)?;
        let mut typing = sender(cx.socket);
        typing["typing"] = json!(cx.data.as_bool().unwrap_or(true));
        cx.hub.emit_all_except(cx.socket.id(), "typing", &typing);
        Ok(Value::Null)
    });
    hub.on("private", |cx| {
        let private = message(cx)?;
        let to = cx.data["to"].as_str().unwrap_or_default();
        match cx.hub.emit_to(to, "private", &private) {
            Ok(()) => Ok(json!({ "delivered": 1 })),
            Err(SendError::Gone) => {
                let why = format!("no connection with id {to:?}");
                Err(RequestError::new("unknown_target", why))
            }
            Err(why) => Err(RequestError::new("not_delivered", why.to_string())),
        }
    });
    hub
}

/// Runs the hub on `listener` until `shutdown` completes, then stops
/// accepting and shuts the hub down gracefully: upgrades under way refused
/// (503), `end` and a 1001 close sent to every connection, and up to five
/// seconds for them to leave.
pub async fn run(
    listener: TcpListener,
    hub: Hub,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::select! {
        result = accept_loop(&listener, &hub) => return result,
        () = shutdown => {}
    }
    drop(listener);
    if !hub.shutdown(Duration::from_secs(5)).await {
        eprintln!("some connections did not leave in time");
    }
    Ok(())
}

/// Accepts connections and runs each in the hub, in the task that accepted it.
async fn accept_loop(listener: &TcpListener, hub: &Hub) -> std::io::Result<()> {
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
        .unwrap_or_else(|| "127.0.0.1:9082".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{}/ws?name=NICK", listener.local_addr()?);
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling here: run until killed.
            std::future::pending::<()>().await;
        }
    };
    run(listener, build_hub(), ctrl_c).await
}
