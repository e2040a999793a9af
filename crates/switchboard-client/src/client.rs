//! The application's handle on a hub connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::driver::{self, Command};
use crate::incoming::Incoming;
use crate::options::ClientOptions;
use crate::state::ClientState;

// Defined in modules of their own (the driver uses them too); still
// reachable here, where they were first.
pub use crate::error::ClientError;
pub use crate::state::Status;

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// The server's handlers only.
    Server,
    /// The members of a room.
    Room(String),
    /// One connection, by id (a direct message).
    Connection(String),
    /// Every connection.
    Everyone,
}

/// A reconnecting client of the hub. Cheap to clone; the connection closes
/// when [`Client::close`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    state: Arc<ClientState>,
    commands: mpsc::Sender<Command>,
    next_ack: Arc<AtomicU64>,
    ack_timeout: std::time::Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id())
            .field("status", &self.status())
            .finish()
    }
}

impl Client {
    /// Connects to a hub (`ws://host:port/ws`) and waits for `ready`, at
    /// most [`ClientOptions::connect_timeout`].
    ///
    /// Fails at once, with the cause, when the first attempt fails: the
    /// server refused the upgrade ([`ClientError::Refused`]: 401, 403, 404,
    /// …) or could not be reached ([`ClientError::Unreachable`]). A server
    /// that accepts the WebSocket but sends no `ready` in time is
    /// [`ClientError::NotAHub`]. Once connected, a lost connection is
    /// retried by the [`Reconnect`](crate::Reconnect) policy (a refusal is
    /// not). Use [`Client::start`] to have the policy retry the first
    /// connection too.
    ///
    /// Handlers registered with [`Client::on`] right after this returns
    /// still get what the server sent right after `ready`: an event that
    /// comes while no handler takes its name (and no [`Client::events`]
    /// stream is open) is kept for the first handler registered for it (at
    /// most 256 events in all, the oldest dropped).
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        let timeout = options.connect_timeout;
        let client = Client::launch(url, options, true);
        let mut status = client.state.watch_status();
        let connected = async {
            loop {
                match *status.borrow_and_update() {
                    Status::Connected => return Ok(()),
                    Status::Gone => return Err(()),
                    Status::Connecting | Status::Reconnecting => {}
                }
                if status.changed().await.is_err() {
                    return Err(());
                }
            }
        };
        match tokio::time::timeout(timeout, connected).await {
            Ok(Ok(())) => Ok(client),
            Ok(Err(())) => Err(client.state.failure().unwrap_or(ClientError::Closed)),
            Err(_) => {
                let failure = if client.state.is_open() {
                    ClientError::NotAHub { waited: timeout }
                } else {
                    let cause = client
                        .state
                        .last_error()
                        .unwrap_or_else(|| format!("no connection within {timeout:?}"));
                    ClientError::Unreachable { cause }
                };
                client.close().await;
                Err(failure)
            }
        }
    }

    /// Starts a client without waiting for the first connection; watch
    /// [`Client::status`] or the `ready` event. The first connection is
    /// retried like any other (a refusal, 401 or 403, is not).
    pub fn start(url: &str, options: ClientOptions) -> Client {
        Client::launch(url, options, false)
    }

    fn launch(url: &str, options: ClientOptions, first_is_final: bool) -> Client {
        let url = match &options.name {
            Some(name) => with_name(url, name),
            None => url.to_owned(),
        };
        let state = Arc::new(ClientState::new());
        let (commands, receiver) = mpsc::channel(1024);
        let ack_timeout = options.ack_timeout;
        let driver = driver::run(Arc::clone(&state), url, options, receiver, first_is_final);
        tokio::spawn(driver);
        Client {
            state,
            commands,
            next_ack: Arc::new(AtomicU64::new(1)),
            ack_timeout,
        }
    }

    /// Why the client gave up, once its status is [`Status::Gone`] for any
    /// other reason than [`Client::close`].
    pub fn failure(&self) -> Option<ClientError> {
        self.state.failure()
    }

    /// Calls `handler` for every event of this name: server events, and the
    /// client's own `reconnecting`, `reconnection_failed`; `address` for
    /// `{path, values}` messages. Events of this name that came while no
    /// handler took it are handed to the first handler at once, in order.
    pub fn on<F: Fn(&Incoming) + Send + Sync + 'static>(&self, event: &str, handler: F) -> &Self {
        self.state.add_handler(event, Arc::new(handler));
        self
    }

    /// Calls `handler` with every event, the client's own included, in
    /// order, from the task that reads the connection: nothing is skipped,
    /// and a slow handler slows the reading (the server then holds or, past
    /// its bounds, closes the connection; a room with history is recovered
    /// after the reconnect). The events that came while no handler took
    /// them are handed to it at once.
    pub fn on_any<F: Fn(&Incoming) + Send + Sync + 'static>(&self, handler: F) -> &Self {
        self.state.add_any_handler(Arc::new(handler));
        self
    }

    /// Every event from now on, as a stream (a receiver that falls more than
    /// 1024 events behind skips the oldest and is told how many: for every
    /// event without a gap, see [`Client::on_any`]).
    pub fn events(&self) -> broadcast::Receiver<Incoming> {
        self.state.events()
    }

    /// The connection id given by the server in the last `ready`.
    pub fn id(&self) -> Option<String> {
        self.state.id()
    }

    /// The connection state.
    pub fn status(&self) -> Status {
        self.state.status()
    }

    /// How many times a connection was established (1 + reconnections).
    pub fn connection_count(&self) -> u64 {
        self.state.connection_count()
    }

    /// Sends an event. While reconnecting it is buffered (see
    /// [`ClientOptions::buffer`]).
    pub async fn emit(&self, event: &str, data: &Value, to: To) -> Result<(), ClientError> {
        self.command(Command::Send(message(event, data, &to), None))
            .await
    }

    /// Sends an event and waits for its `ack` (at most the ack timeout).
    pub async fn emit_with_ack(
        &self,
        event: &str,
        data: &Value,
        to: To,
    ) -> Result<Value, ClientError> {
        self.request(message(event, data, &to)).await
    }

    /// Joins a room; the room is joined again after every reconnect.
    pub async fn join(&self, room: &str) -> Result<(), ClientError> {
        self.command(Command::Join(room.to_owned())).await
    }

    /// Leaves a room.
    pub async fn leave(&self, room: &str) -> Result<(), ClientError> {
        self.command(Command::Leave(room.to_owned())).await
    }

    /// Takes a name; it is taken again after every reconnect.
    pub async fn rename(&self, name: &str) -> Result<(), ClientError> {
        self.command(Command::Rename(name.to_owned())).await
    }

    /// Subscribes to an address pattern (`/sensors/*`, `/a/**`); renewed after reconnects.
    pub async fn subscribe(&self, pattern: &str) -> Result<(), ClientError> {
        self.command(Command::Subscribe(pattern.to_owned())).await
    }

    /// Drops a subscription.
    pub async fn unsubscribe(&self, pattern: &str) -> Result<(), ClientError> {
        self.command(Command::Unsubscribe(pattern.to_owned())).await
    }

    /// Publishes an address-style message.
    pub async fn publish(&self, path: &str, values: Vec<Value>) -> Result<(), ClientError> {
        let message = json!({ "path": path, "values": values });
        self.command(Command::Send(message, None)).await
    }

    /// Asks the server for the members of a room (or every connection).
    pub async fn users(&self, room: Option<&str>) -> Result<Value, ClientError> {
        let mut message = json!({ "event": "users" });
        if let Some(room) = room {
            message["room"] = json!(room);
        }
        self.request(message).await
    }

    /// Reads a page of a room's stored messages (a room with history):
    /// up to `limit` after offset `after`, oldest first, as the ack's data
    /// `{"epoch", "offset", "oldest", "messages"}`.
    pub async fn history(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<Value, ClientError> {
        let data = json!({ "after": after, "limit": limit });
        self.request(json!({ "event": "history", "room": room, "data": data }))
            .await
    }

    /// Sends a new token for this connection (`refresh`, on servers with
    /// JWT) and returns the ack's data, `{"expires", "left"}`. It moves the
    /// connection's deadline; a reconnection still uses the URL's token.
    pub async fn refresh(&self, token: &str) -> Result<Value, ClientError> {
        self.request(json!({ "event": "refresh", "data": { "token": token } }))
            .await
    }

    /// Closes the connection (1000) and stops reconnecting.
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close).await;
        let mut status = self.state.watch_status();
        let gone = async {
            while *status.borrow_and_update() != Status::Gone {
                if status.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), gone).await;
    }

    async fn command(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Closed)
    }

    async fn request(&self, message: Value) -> Result<Value, ClientError> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.command(Command::Send(message, Some((id, reply))))
            .await?;
        match tokio::time::timeout(self.ack_timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Dropped),
            Err(_) => Err(ClientError::Timeout),
        }
    }
}

fn message(event: &str, data: &Value, to: &To) -> Value {
    let mut message = json!({ "event": event, "data": data });
    match to {
        To::Server => {}
        To::Room(room) => message["room"] = json!(room),
        To::Connection(id) => message["to"] = json!(id),
        To::Everyone => message["broadcast"] = json!(true),
    }
    message
}

/// Adds `name=` to the URL's query, percent-encoding what needs it.
fn with_name(url: &str, name: &str) -> String {
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}name={encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_target() {
        assert_eq!(
            message("e", &json!(1), &To::Server),
            json!({"event":"e","data":1})
        );
        assert_eq!(message("e", &json!(1), &To::Room("r".into()))["room"], "r");
        assert_eq!(
            message("e", &json!(1), &To::Connection("x".into()))["to"],
            "x"
        );
        assert_eq!(message("e", &json!(1), &To::Everyone)["broadcast"], true);
    }

    #[test]
    fn name_goes_in_the_query() {
        assert_eq!(with_name("ws://h/ws", "al ice"), "ws://h/ws?name=al%20ice");
        assert_eq!(with_name("ws://h/ws?x=1", "bob"), "ws://h/ws?x=1&name=bob");
    }
}
