//! The task that owns the connection: connects, restores rooms and
//! subscriptions after a reconnect, sends, receives, and backs off.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_net::{CloseCode, ConnectOptions, Event, Message, Reader, Writer};
use tokio::sync::{mpsc, oneshot};

use crate::error::ClientError;
use crate::incoming::Incoming;
use crate::options::ClientOptions;
use crate::state::{ClientState, Status};

/// The answer to a request: the `ack`'s data, or why there is none.
pub(crate) type AckResult = Result<Value, ClientError>;
/// The ack id of a request and the channel its reply goes to.
pub(crate) type AckWaiter = (u64, oneshot::Sender<AckResult>);

/// What the application asked the driver to do.
pub(crate) enum Command {
    /// Send a message; with an ack id and the channel its reply goes to.
    Send(Value, Option<AckWaiter>),
    /// Join a room, and rejoin it after every reconnect.
    Join(String),
    /// Leave a room.
    Leave(String),
    /// Take a name, and take it again after every reconnect.
    Rename(String),
    /// Subscribe to an address pattern, again after every reconnect.
    Subscribe(String),
    /// Drop a subscription.
    Unsubscribe(String),
    /// Close the connection and stop.
    Close,
}

/// Why a session ended.
enum Ended {
    /// The application closed the client (or dropped every handle).
    ByUser,
    /// The connection was lost, or the server said `end`: reconnect.
    Lost,
}

/// What survives reconnections.
struct State {
    rooms: BTreeSet<String>,
    /// Where each room with history stands: its epoch and the offset of
    /// the last message handed to the application. A rejoin asks for what
    /// came after it; a message at or before it is not handed again.
    positions: HashMap<String, (String, u64)>,
    /// Offsets handed to the application and not yet acknowledged
    /// (`?acks=1`), by room.
    unacked: HashMap<String, u64>,
    patterns: BTreeSet<String>,
    name: Option<String>,
    buffer: VecDeque<(Value, Option<AckWaiter>)>,
    pending: HashMap<u64, oneshot::Sender<AckResult>>,
}

/// Owns the connection until the application closes the client or the
/// reconnection policy gives up. With `first_is_final` (from
/// [`Client::connect`](crate::Client::connect)) a first attempt that fails
/// ends the client at once, with its cause.
pub(crate) async fn run(
    client: Arc<ClientState>,
    url: String,
    options: ClientOptions,
    mut commands: mpsc::Receiver<Command>,
    first_is_final: bool,
) {
    let urls: Vec<String> = std::iter::once(url)
        .chain(options.fallback_urls.iter().cloned())
        .collect();
    let mut state = State {
        rooms: BTreeSet::new(),
        positions: HashMap::new(),
        unacked: HashMap::new(),
        patterns: BTreeSet::new(),
        name: options.name.clone(),
        buffer: VecDeque::new(),
        pending: HashMap::new(),
    };
    let mut attempt = 0;
    // Every attempt moves to the next URL: a client given several nodes
    // fails over to another one.
    let mut tries = 0usize;
    loop {
        // Why the last attempt to connect failed, for the events below.
        let mut error = None;
        let url = &urls[tries % urls.len()];
        tries += 1;
        match open(url, &options, &state).await {
            Ok((reader, writer)) => {
                attempt = 0;
                client.set_open(true);
                let ended = session(&client, reader, writer, &mut commands, &mut state).await;
                client.set_open(false);
                match ended {
                    Ended::ByUser => break,
                    Ended::Lost => fail_pending(&mut state, ClientError::Disconnected),
                }
            }
            Err(failure) => {
                client.set_last_error(Some(failure.to_string()));
                let never_connected = client.connection_count() == 0;
                if let Some(refusal) = refusal(&failure) {
                    give_up(&client, refusal, attempt + 1);
                    break;
                }
                if first_is_final && never_connected {
                    let cause = failure.to_string();
                    give_up(&client, ClientError::Unreachable { cause }, 1);
                    break;
                }
                error = Some(failure.to_string());
            }
        }
        attempt += 1;
        if attempt > options.reconnect.attempts {
            let cause = error.unwrap_or_else(|| String::from("the connection was lost"));
            give_up(
                &client,
                ClientError::Unreachable { cause },
                options.reconnect.attempts,
            );
            break;
        }
        let delay = options.reconnect.delay(attempt);
        client.set_status(Status::Reconnecting);
        client.dispatch(Incoming::local(
            "reconnecting",
            json!({ "attempt": attempt, "delay_ms": delay.as_millis() as u64, "error": error }),
        ));
        if wait_buffering(delay, &mut commands, &mut state, options.buffer).await {
            break;
        }
    }
    client.set_status(Status::Gone);
    fail_pending(&mut state, ClientError::Closed);
    for (_, ack) in state.buffer.drain(..) {
        if let Some((_, reply)) = ack {
            let _ = reply.send(Err(ClientError::Closed));
        }
    }
}

/// A refusal that asking again would not change: the server answered the
/// upgrade with a client error (401, 403, 404, …; not 408 or 429, which
/// say "later").
fn refusal(failure: &switchboard_net::Error) -> Option<ClientError> {
    let handshake = failure.handshake_error()?;
    let status = handshake.status();
    let permanent = (400..500).contains(&status) && status != 408 && status != 429;
    permanent.then(|| ClientError::Refused {
        status,
        reason: explanation(handshake.reason(), status).to_owned(),
    })
}

/// The server's own words in a refusal's reason ("server answered 401
/// Unauthorized: a token is required"), else its status text.
fn explanation(reason: &str, status: u16) -> &str {
    let answered = format!("server answered {status} ");
    let rest = reason.strip_prefix(answered.as_str()).unwrap_or(reason);
    rest.split_once(": ").map_or(rest, |(_, said)| said)
}

/// Ends the client for good: records why, says so with
/// `reconnection_failed`, and sets the status `Gone`.
fn give_up(client: &ClientState, failure: ClientError, attempts: u32) {
    client.dispatch(Incoming::local(
        "reconnection_failed",
        json!({ "attempts": attempts, "error": failure.to_string() }),
    ));
    client.set_failure(failure);
    client.set_status(Status::Gone);
}

/// Connects and restores the name, rooms and subscriptions.
async fn open(
    url: &str,
    options: &ClientOptions,
    state: &State,
) -> Result<(Reader, Writer), switchboard_net::Error> {
    let mut config = switchboard_net::Config::default();
    config
        .ping_interval(Some(options.ping_interval))
        .pong_timeout(options.pong_timeout);
    let mut connect = ConnectOptions::default().config(config);
    if let Some(tls) = &options.tls {
        connect = connect.tls(tls.clone());
    }
    for (name, value) in &options.headers {
        connect = connect.header(name.clone(), value.clone());
    }
    let url = if options.acks {
        let separator = if url.contains('?') { '&' } else { '?' };
        format!("{url}{separator}acks=1")
    } else {
        url.to_owned()
    };
    let (socket, _) = switchboard_net::connect_with(&url, connect).await?;
    let (reader, writer) = socket.split();
    if let Some(name) = &state.name {
        feed(
            &writer,
            &json!({ "event": "rename", "data": { "name": name } }),
        )
        .await?;
    }
    for room in &state.rooms {
        feed(&writer, &join_message(room, state.positions.get(room))).await?;
    }
    for pattern in &state.patterns {
        feed(
            &writer,
            &json!({ "event": "subscribe", "data": { "pattern": pattern } }),
        )
        .await?;
    }
    writer.flush().await?;
    Ok((reader, writer))
}

/// The prefix of the ack id of the client's own joins: their answers say
/// where a room with history stands.
const JOIN_ACK: &str = "join:";

/// A join, with `since` when the room's position is known.
fn join_message(room: &str, position: Option<&(String, u64)>) -> Value {
    let mut join = json!({ "event": "join", "room": room, "ack": format!("{JOIN_ACK}{room}") });
    if let Some((epoch, offset)) = position {
        join["since"] = json!({ "epoch": epoch, "offset": offset });
    }
    join
}

async fn feed(writer: &Writer, value: &Value) -> Result<(), switchboard_net::Error> {
    writer.feed(Message::text(value.to_string())).await
}

/// Runs one connection until it is lost or the application closes it.
async fn session(
    client: &ClientState,
    mut reader: Reader,
    writer: Writer,
    commands: &mut mpsc::Receiver<Command>,
    state: &mut State,
) -> Ended {
    while let Some((message, ack)) = state.buffer.pop_front() {
        if send(&writer, message, ack, state).await.is_err() {
            return Ended::Lost;
        }
    }
    let mut acks = tokio::time::interval(ACK_INTERVAL);
    loop {
        tokio::select! {
            _ = acks.tick(), if !state.unacked.is_empty() => {
                if send_received(&writer, state).await.is_err() {
                    return Ended::Lost;
                }
            }
            command = commands.recv() => {
                let Some(command) = command else {
                    let _ = writer.close(CloseCode::NORMAL, "client done").await;
                    return Ended::ByUser;
                };
                match apply(command, state) {
                    Applied::Close => {
                        let _ = writer.close(CloseCode::NORMAL, "client closed").await;
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain(&mut reader)).await;
                        return Ended::ByUser;
                    }
                    Applied::Send(message, ack) => {
                        if send(&writer, message, ack, state).await.is_err() {
                            return Ended::Lost;
                        }
                    }
                }
            }
            event = reader.next_event() => match event {
                Ok(Event::Message(Message::Text(text))) => {
                    if on_message(client, text.as_str(), state) {
                        return Ended::Lost;
                    }
                    if state.unacked.values().sum::<u64>() >= ACK_BATCH && send_received(&writer, state).await.is_err() {
                        return Ended::Lost;
                    }
                }
                Ok(Event::Message(Message::Binary(_)) | Event::Ping(_) | Event::Pong(_) | Event::Fragment(_)) => {}
                Ok(Event::Closed(_)) | Err(_) => return Ended::Lost,
            }
        }
    }
}

/// How often acknowledgements go out, at most (`?acks=1`).
const ACK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// Messages handed to the application that make an acknowledgement go
/// out before the interval.
const ACK_BATCH: u64 = 100;

/// Acknowledges, per room, the last offset handed to the application.
async fn send_received(writer: &Writer, state: &mut State) -> Result<(), switchboard_net::Error> {
    let rooms: serde_json::Map<String, Value> = state
        .unacked
        .drain()
        .filter_map(|(room, _)| {
            let (_, offset) = state.positions.get(&room)?;
            Some((room, json!(offset)))
        })
        .collect();
    if rooms.is_empty() {
        return Ok(());
    }
    let message = json!({ "event": "received", "data": rooms });
    writer.send(Message::text(message.to_string())).await
}

async fn drain(reader: &mut Reader) {
    while reader.next_event().await.is_ok() {}
}

/// Handles one server message; returns true when the server said `end`.
fn on_message(client: &ClientState, text: &str, state: &mut State) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let Some(incoming) = Incoming::parse(value) else {
        return false;
    };
    match incoming.event.as_str() {
        "ack" if joined_room(&incoming).is_some() => on_join_answer(client, &incoming, state),
        "ack" => {
            let id = incoming.raw.get("ack").and_then(Value::as_u64);
            if let Some(reply) = id.and_then(|id| state.pending.remove(&id)) {
                let result = match incoming.raw.get("error") {
                    Some(error) => Err(ClientError::Server {
                        code: error["code"].as_str().unwrap_or_default().to_owned(),
                        message: error["message"].as_str().unwrap_or_default().to_owned(),
                    }),
                    None => Ok(incoming.data.clone()),
                };
                let _ = reply.send(result);
            }
            false
        }
        "ready" => {
            let id = incoming
                .data
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned);
            client.record_ready(id);
            client.dispatch(incoming);
            false
        }
        "end" => {
            client.dispatch(incoming);
            true
        }
        _ => {
            if is_known(&incoming, state) {
                return false; // handed to the application before
            }
            client.dispatch(incoming);
            false
        }
    }
}

/// The room of an answer to the client's own join.
fn joined_room(incoming: &Incoming) -> Option<&str> {
    incoming.raw.get("ack")?.as_str()?.strip_prefix(JOIN_ACK)
}

/// A join's answer: the room's position, and whether what was missed came
/// (`recovered`) or could not (`recovery_failed`, with where the room is
/// now: the application may read its `history`). A refusal is handed on
/// as an `error` event; returns true when the join must be tried again on
/// a new connection (the server could not reach its history store).
fn on_join_answer(client: &ClientState, incoming: &Incoming, state: &mut State) -> bool {
    let Some(room) = joined_room(incoming).map(str::to_owned) else {
        return false;
    };
    if let Some(error) = incoming.raw.get("error") {
        if error["code"] == "history_unavailable" {
            return true;
        }
        let mut refused = Incoming::local("error", error.clone());
        refused.room = Some(room);
        client.dispatch(refused);
        return false;
    }
    let data = &incoming.data;
    let (Some(epoch), Some(offset)) = (data["epoch"].as_str(), data["offset"].as_u64()) else {
        return false; // a room without history
    };
    let had = state
        .positions
        .insert(room.clone(), (epoch.to_owned(), offset));
    match data["recovered"].as_bool() {
        Some(true) => client.dispatch(Incoming::local(
            "recovered",
            json!({ "room": room, "replayed": data["replayed"] }),
        )),
        Some(false) => client.dispatch(Incoming::local(
            "recovery_failed",
            json!({ "room": room, "epoch": epoch, "offset": offset, "had": had.map(|(e, o)| json!({"epoch": e, "offset": o})) }),
        )),
        None => {}
    }
    false
}

/// Whether a room message with an offset was handed to the application
/// already; if not, it becomes the room's position.
fn is_known(incoming: &Incoming, state: &mut State) -> bool {
    let (Some(room), Some(offset), Some(epoch)) = (
        incoming.room.as_deref(),
        incoming.raw.get("offset").and_then(Value::as_u64),
        incoming.raw.get("epoch").and_then(Value::as_str),
    ) else {
        return false;
    };
    if !state.rooms.contains(room) {
        return false;
    }
    match state.positions.get_mut(room) {
        Some((known, last)) if known == epoch => {
            if offset <= *last {
                return true;
            }
            *last = offset;
        }
        _ => {
            state
                .positions
                .insert(room.to_owned(), (epoch.to_owned(), offset));
        }
    }
    *state.unacked.entry(room.to_owned()).or_default() += 1;
    false
}

enum Applied {
    Send(Value, Option<AckWaiter>),
    Close,
}

/// Records what must survive a reconnect and turns a command into a message.
fn apply(command: Command, state: &mut State) -> Applied {
    match command {
        Command::Send(message, ack) => Applied::Send(message, ack),
        Command::Join(room) => {
            state.rooms.insert(room.clone());
            Applied::Send(join_message(&room, state.positions.get(&room)), None)
        }
        Command::Leave(room) => {
            state.rooms.remove(&room);
            state.positions.remove(&room);
            state.unacked.remove(&room);
            Applied::Send(json!({ "event": "leave", "room": room }), None)
        }
        Command::Rename(name) => {
            state.name = Some(name.clone());
            Applied::Send(json!({ "event": "rename", "data": { "name": name } }), None)
        }
        Command::Subscribe(pattern) => {
            state.patterns.insert(pattern.clone());
            Applied::Send(
                json!({ "event": "subscribe", "data": { "pattern": pattern } }),
                None,
            )
        }
        Command::Unsubscribe(pattern) => {
            state.patterns.remove(&pattern);
            Applied::Send(
                json!({ "event": "unsubscribe", "data": { "pattern": pattern } }),
                None,
            )
        }
        Command::Close => Applied::Close,
    }
}

async fn send(
    writer: &Writer,
    mut message: Value,
    ack: Option<AckWaiter>,
    state: &mut State,
) -> Result<(), switchboard_net::Error> {
    if let Some((id, reply)) = ack {
        message["ack"] = json!(id);
        // Forget requests whose callers stopped waiting (their ack timed out).
        state.pending.retain(|_, waiting| !waiting.is_closed());
        state.pending.insert(id, reply);
    }
    writer.send(Message::text(message.to_string())).await
}

/// Sleeps before the next attempt while keeping track of commands: room and
/// name changes are recorded, messages buffered (dropping the oldest when
/// full). Returns true if the application closed the client meanwhile.
async fn wait_buffering(
    delay: std::time::Duration,
    commands: &mut mpsc::Receiver<Command>,
    state: &mut State,
    capacity: usize,
) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return false,
            command = commands.recv() => {
                let Some(command) = command else { return true };
                match apply(command, state) {
                    Applied::Close => return true,
                    // Room, name and subscription changes are replayed on
                    // reconnect from the state; only messages are buffered.
                    Applied::Send(message, ack) if is_data(&message) => {
                        if state.buffer.len() >= capacity {
                            if let Some((_, Some((_, reply)))) = state.buffer.pop_front() {
                                let _ = reply.send(Err(ClientError::Dropped));
                            }
                        }
                        state.buffer.push_back((message, ack));
                    }
                    Applied::Send(..) => {}
                }
            }
        }
    }
}

fn is_data(message: &Value) -> bool {
    !matches!(
        message.get("event").and_then(Value::as_str),
        Some("join" | "leave" | "rename" | "subscribe" | "unsubscribe")
    )
}

fn fail_pending(state: &mut State, error: ClientError) {
    for (_, reply) in state.pending.drain() {
        let _ = reply.send(Err(error.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::explanation;

    #[test]
    fn a_refusal_keeps_the_servers_words_or_its_status_text() {
        let said = "server answered 401 Unauthorized: a token is required";
        assert_eq!(explanation(said, 401), "a token is required");
        assert_eq!(
            explanation("server answered 404 Not Found", 404),
            "Not Found"
        );
    }
}
