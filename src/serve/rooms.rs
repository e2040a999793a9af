//! The rooms protocol of Espruino's `ws` module (its Node server example),
//! served on endpoints of kind `rooms` (docs/SEEDS.md):
//!
//! - on connect the server sends the text `User Joined`;
//! - `{"join":ROOM}` adds the connection to ROOM;
//! - `{"room":ROOM,"msg":M}` sends M to every member of ROOM, the sender
//!   included if it is one, or to every connection for the room `"all"`:
//!   a string as its text, any other value as its JSON;
//! - `{"msg":M}` is logged (`Server got: M`, at info level);
//! - the keys combine as in the example: `{"join":"a","room":"a","msg":"hi"}`
//!   joins, delivers and logs.
//!
//! Anything else (not JSON, not an object, none of the three keys, a room
//! that is not a valid room name, a binary message) is answered with the
//! hub's error event, `{"event":"error","data":{"code","message"}}`, and the
//! connection stays open. Every `rooms` endpoint shares one set of rooms,
//! apart from the hub's.
//!
//! A connection is admitted as a hub one (its checks, a place under
//! `max_connections`) and has the transport's limits (`max_message_size`,
//! idle timeout, keepalive), the hub's queue bounds, a full queue closing
//! it with 1008, and the hub's message rates (`rate_messages`,
//! `rate_bytes`, and the per-address ones shared with the hub's own
//! connections), a connection over them closed with 1008: a message to
//! `all` costs one push per connection, so its rate is what bounds what a
//! client can make the server do.
//!
//! Deliveries hold the rooms for reading only, as the hub's own fan-out
//! holds its registry: connections delivering at once do not wait for
//! each other, and a push never waits for the recipient's socket.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use serde_json::{json, Value};
use switchboard_hub::{envelope, Hub, Metrics, RequestError};
use switchboard_net::{CloseCode, Event, Message, Outbox, PushError, Session};
use switchboard_proto::frame::{encode_server_frame, OpCode};
use tokio::sync::watch;

/// What the server sends a connection as it opens.
const GREETING: &str = "User Joined";
/// The room whose messages go to every connection.
const EVERYONE: &str = "all";
/// Rooms one connection may join, as in the hub.
const MAX_ROOMS: usize = 100;

/// The members of every room. Cheap to share behind the app.
#[derive(Default)]
pub struct Rooms {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    connections: HashMap<u64, Member>,
    rooms: HashMap<String, HashSet<u64>>,
}

struct Member {
    outbox: Outbox,
    rooms: BTreeSet<String>,
}

impl Rooms {
    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, outbox: Outbox) -> u64 {
        let mut state = self.state_mut();
        state.next_id += 1;
        let id = state.next_id;
        let member = Member {
            outbox,
            rooms: BTreeSet::new(),
        };
        state.connections.insert(id, member);
        id
    }

    fn remove(&self, id: u64) {
        let mut state = self.state_mut();
        let Some(member) = state.connections.remove(&id) else {
            return;
        };
        for room in member.rooms {
            if let Some(members) = state.rooms.get_mut(&room) {
                members.remove(&id);
                if members.is_empty() {
                    state.rooms.remove(&room);
                }
            }
        }
    }

    fn join(&self, id: u64, room: String) -> Result<(), RequestError> {
        let mut state = self.state_mut();
        let Some(member) = state.connections.get_mut(&id) else {
            return Ok(());
        };
        if member.rooms.len() >= MAX_ROOMS && !member.rooms.contains(&room) {
            return Err(RequestError::new(
                "too_many_rooms",
                format!("at most {MAX_ROOMS} rooms per connection"),
            ));
        }
        member.rooms.insert(room.clone());
        state.rooms.entry(room).or_default().insert(id);
        Ok(())
    }

    /// Sends `text` to the members of `room` (everyone for `all`); returns
    /// how many queued it. A member whose queue is full is closed (1008).
    fn deliver(&self, room: &str, text: &str) -> usize {
        let frame = encode_server_frame(OpCode::Text, false, text.as_bytes());
        let state = self.state();
        let now = Instant::now();
        let push = |member: &Member| match member.outbox.push(frame.clone(), now) {
            Ok(()) => true,
            Err(PushError::Full { frames, bytes }) => {
                let reason = format!("slow consumer: {frames} messages ({bytes} bytes) queued");
                member.outbox.abort(CloseCode::POLICY_VIOLATION, &reason);
                false
            }
            Err(_) => false,
        };
        if room == EVERYONE {
            return state.connections.values().filter(|m| push(m)).count();
        }
        let Some(members) = state.rooms.get(room) else {
            return 0;
        };
        members
            .iter()
            .filter_map(|id| state.connections.get(id))
            .filter(|m| push(m))
            .count()
    }

    /// Does what one message asks; the error to answer it with otherwise.
    fn handle(&self, id: u64, message: &Message) -> Result<(), RequestError> {
        let Message::Text(text) = message else {
            return Err(RequestError::new(
                "binary_not_supported",
                "the rooms protocol takes JSON text messages",
            ));
        };
        let value: Value = serde_json::from_str(text.as_str())
            .map_err(|error| RequestError::new("invalid_json", error.to_string()))?;
        let Value::Object(object) = value else {
            return Err(usage());
        };
        let (join, room, msg) = (object.get("join"), object.get("room"), object.get("msg"));
        if join.is_none() && room.is_none() && msg.is_none() {
            return Err(usage());
        }
        // All checked before anything is done: a bad field does nothing.
        let join = join.map(room_name).transpose()?;
        let delivery = match (room, msg) {
            (Some(room), Some(msg)) => Some((room_name(room)?, text_of(msg))),
            (Some(_), None) => {
                return Err(RequestError::new(
                    "invalid_message",
                    "{\"room\":ROOM} needs \"msg\", the message to send to it",
                ))
            }
            (None, _) => None,
        };
        if let Some(room) = join {
            self.join(id, room)?;
        }
        if let Some((room, text)) = &delivery {
            self.deliver(room, text);
        }
        if let Some(msg) = msg {
            tracing::info!(connection = id, "Server got: {}", text_of(msg));
        }
        Ok(())
    }
}

/// The error for a message that is none of the protocol's.
fn usage() -> RequestError {
    RequestError::new(
        "invalid_message",
        "expected {\"join\":ROOM}, {\"room\":ROOM,\"msg\":MESSAGE} or {\"msg\":MESSAGE}",
    )
}

fn room_name(value: &Value) -> Result<String, RequestError> {
    match value {
        Value::String(room) => envelope::room_name(Some(room)),
        _ => Err(RequestError::new("invalid_room", "a room is a string")),
    }
}

/// A message as the Node example's `client.send(message.msg)` sends it: a
/// string as it is, anything else as its JSON.
fn text_of(msg: &Value) -> String {
    match msg {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Runs one connection of a `rooms` endpoint, from `address`, until it
/// closes, or until the server shuts down (1001).
pub async fn serve(
    rooms: &Rooms,
    hub: &Hub,
    address: Option<IpAddr>,
    mut session: Session,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = rooms.add(session.outbox().clone());
    let mut limits = hub.rate_limits(address);
    let _ = session.send(Message::text(GREETING));
    let stopping = shutdown.wait_for(|stop| *stop);
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            event = session.next_event() => match event {
                Ok(Event::Message(message)) if !limits.allow(message.len()) => {
                    Metrics::add(&hub.metrics().rate_limited, 1);
                    session.outbox().close(CloseCode::POLICY_VIOLATION, "rate limit exceeded");
                    break;
                }
                Ok(Event::Message(message)) => {
                    if let Err(error) = rooms.handle(id, &message) {
                        let reply = json!({
                            "event": "error",
                            "data": { "code": error.code, "message": error.message },
                        });
                        if session.send(Message::text(reply.to_string())).is_err() {
                            break;
                        }
                    }
                }
                Ok(Event::Closed(_)) | Err(_) => break,
                Ok(_) => {}
            },
            _ = &mut stopping => {
                session.outbox().close(CloseCode::GOING_AWAY, "server shutting down");
                break;
            }
        }
    }
    rooms.remove(id);
    while session.next_event().await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_messages_are_refused_before_anything_is_done() {
        let rooms = Rooms::default();
        let code = |text: &str| {
            rooms
                .handle(1, &Message::text(text.to_owned()))
                .unwrap_err()
                .code
        };
        assert_eq!(code("not json"), "invalid_json");
        assert_eq!(code("[1]"), "invalid_message");
        assert_eq!(code("{\"hello\":1}"), "invalid_message");
        assert_eq!(code("{\"room\":\"a\"}"), "invalid_message");
        assert_eq!(code("{\"join\":5}"), "invalid_room");
        assert_eq!(code("{\"join\":\"\"}"), "invalid_room");
        assert_eq!(
            code("{\"join\":\"a\",\"room\":7,\"msg\":\"x\"}"),
            "invalid_room"
        );
        assert!(rooms.state().rooms.is_empty(), "nothing joined");
        let binary = Message::binary(vec![1u8]);
        assert_eq!(
            rooms.handle(1, &binary).unwrap_err().code,
            "binary_not_supported"
        );
        assert_eq!(text_of(&json!({"a":1})), "{\"a\":1}");
        assert_eq!(text_of(&json!("plain")), "plain");
    }
}
