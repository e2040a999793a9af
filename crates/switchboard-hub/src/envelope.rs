//! The hub's wire format: parsing what clients send and
//! encoding what they receive, in JSON or MessagePack, or as Socket.IO
//! packets ([`crate::socketio`]).

use std::cell::RefCell;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_proto::deflate::SharedDeflate;
use switchboard_proto::frame::{encode_server_frame, OpCode};

use crate::history::{Since, MAX_HISTORY_PAGE};
use crate::id::ConnId;
use crate::pattern::{check_published_address, Pattern};

/// The subprotocol of the JSON encoding (the default when none is negotiated).
pub const JSON_PROTOCOL: &str = "switchboard.json";
/// The subprotocol of the MessagePack encoding.
pub const MSGPACK_PROTOCOL: &str = "switchboard.msgpack";

/// The longest event, room or name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Events only the server sends; a client may not send them (but for
/// `ack` as an answer to the server's `ask`, which [`parse`] takes apart).
const RESERVED_EVENTS: &[&str] = &["ready", "userlist", "ack", "error", "end", "stream:end"];

/// How a connection's messages are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// JSON objects in text frames.
    Json,
    /// MessagePack maps in binary frames.
    MsgPack,
    /// Socket.IO packets over Engine.IO (`42["event",data]`) in text
    /// frames, binary attachments in binary frames after them. Chosen by
    /// the endpoint, never by a subprotocol.
    SocketIo,
}

impl Codec {
    /// The codec for a negotiated subprotocol (JSON when there is none).
    pub fn from_protocol(protocol: Option<&str>) -> Codec {
        match protocol {
            Some(MSGPACK_PROTOCOL) => Codec::MsgPack,
            _ => Codec::Json,
        }
    }

    /// Encodes a value as this codec's payload.
    /// (For Socket.IO: the text packet alone, binary values left as
    /// placeholders; [`Codec::frame`] adds their attachments.)
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Bytes {
        let encoded = match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Codec::MsgPack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
            Codec::SocketIo => serde_json::to_value(value)
                .map(|value| crate::socketio::mapping::text(&value).into_bytes())
                .map_err(|e| e.to_string()),
        };
        // Every type the hub encodes is a map of strings and JSON values,
        // which both encoders accept; an error here is a bug, reported as such.
        Bytes::from(encoded.unwrap_or_else(|error| {
            format!(
                "{{\"event\":\"error\",\"data\":{{\"code\":\"internal\",\"message\":{error:?}}}}}"
            )
            .into_bytes()
        }))
    }

    /// The frame opcode: text for JSON and Socket.IO, binary for MessagePack.
    pub fn opcode(self) -> OpCode {
        match self {
            Codec::Json | Codec::SocketIo => OpCode::Text,
            Codec::MsgPack => OpCode::Binary,
        }
    }

    /// Encodes a value as a whole uncompressed server frame (for
    /// Socket.IO, followed by the frames of its attachments).
    pub fn frame<T: Serialize + ?Sized>(self, value: &T) -> Bytes {
        if self == Codec::SocketIo {
            if let Ok(value) = serde_json::to_value(value) {
                return crate::socketio::mapping::frames(&value);
            }
        }
        encode_server_frame(self.opcode(), false, &self.encode(value))
    }

    /// Decodes a client message payload into a JSON value. (A Socket.IO
    /// connection's messages are read by its task, which keeps the state
    /// they need, and reach the hub decoded: here they are JSON.)
    pub fn decode(self, payload: &[u8]) -> Result<Value, String> {
        match self {
            Codec::Json | Codec::SocketIo => {
                serde_json::from_slice(payload).map_err(|e| e.to_string())
            }
            Codec::MsgPack => {
                let mut reader = payload;
                let value = rmpv::decode::read_value(&mut reader).map_err(|e| e.to_string())?;
                Ok(msgpack_to_json(value))
            }
        }
    }
}

/// MessagePack values as JSON values: binary becomes an array of byte values,
/// extension types an object `{"type", "data"}`.
fn msgpack_to_json(value: rmpv::Value) -> Value {
    use rmpv::Value as M;
    match value {
        M::Nil => Value::Null,
        M::Boolean(b) => Value::Bool(b),
        M::Integer(i) => i
            .as_i64()
            .map(Value::from)
            .or_else(|| i.as_u64().map(Value::from))
            .unwrap_or(Value::Null),
        M::F32(f) => Value::from(f as f64),
        M::F64(f) => Value::from(f),
        M::String(s) => Value::String(s.into_str().unwrap_or_default()),
        M::Binary(bytes) => Value::Array(bytes.into_iter().map(Value::from).collect()),
        M::Array(items) => Value::Array(items.into_iter().map(msgpack_to_json).collect()),
        M::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        M::String(s) => s.into_str().unwrap_or_default(),
                        other => other.to_string(),
                    };
                    (key, msgpack_to_json(v))
                })
                .collect(),
        ),
        M::Ext(kind, data) => serde_json::json!({ "type": kind, "data": data }),
    }
}

/// Where a client event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Nowhere but the application's handlers.
    Server,
    /// Every member of a room.
    Room(String),
    /// One connection (a direct message).
    Direct(ConnId),
    /// Every connection.
    Everyone,
}

/// A parsed client message.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `{"event":"join","room":R}`
    Join(String),
    /// `{"event":"join","room":R,"since":{"epoch":E,"offset":N}}`: join a
    /// room with history and get what was sent to it after offset N.
    Recover {
        /// The room.
        room: String,
        /// Where the client's view of it stopped.
        since: Since,
    },
    /// `{"event":"leave","room":R}`
    Leave(String),
    /// `{"event":"history","room":R,"data":{"after":N,"limit":L}}`: a page
    /// of the room's stored messages.
    History {
        /// The room.
        room: String,
        /// The offset the page starts after.
        after: u64,
        /// The most messages in the page.
        limit: usize,
    },
    /// `{"event":"received","data":{ROOM:OFFSET,…}}`: the client has
    /// processed every message of each room up to its offset.
    Received(Vec<(String, u64)>),
    /// `{"event":"rename","data":{"name":N}}`
    Rename(String),
    /// `{"event":"users"}` or with `"room"`: the list, as the ack's data;
    /// `"data":{"after":ID}` asks for the page after that id.
    Users {
        /// The room, or every connection.
        room: Option<String>,
        /// The last id of the previous page.
        after: Option<String>,
    },
    /// `{"event":"subscribe","data":{"pattern":P}}`
    Subscribe(Pattern),
    /// `{"event":"unsubscribe","data":{"pattern":P}}`
    Unsubscribe(String),
    /// `{"event":"refresh","data":{"token":T}}`: a new token for this connection.
    Refresh(String),
    /// Any other event, with its target.
    Event {
        /// The event name.
        event: String,
        /// The payload.
        data: Value,
        /// Where it goes.
        target: Target,
        /// Whether a room sender gets its own message back (`"echo"`, default true).
        echo: bool,
    },
    /// `{"event":"stream:start","room":R}` (or `to`, `broadcast`): the
    /// connection's next binary message is a stream to them.
    StreamStart(Target),
    /// `{"path":P,"values":[...]}`: an address-style message.
    Address {
        /// The address.
        path: String,
        /// The values.
        values: Vec<Value>,
    },
}

/// A parsed client message with its ack id, if it asked for a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// What the client asked for.
    pub request: Request,
    /// The ack id (a number or a string), if any.
    pub ack: Option<Value>,
}

/// Why a client message was refused; sent back as an `error` event (or as
/// the ack's `error` when the message asked for an ack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// A stable, machine-readable code (`invalid_room`, `forbidden`, …; each is listed in the protocol documentation).
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

impl RequestError {
    /// An error with a code and a message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        RequestError {
            code,
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    event: Option<String>,
    room: Option<String>,
    to: Option<String>,
    broadcast: Option<bool>,
    echo: Option<bool>,
    #[serde(default)]
    data: Value,
    ack: Option<Value>,
    since: Option<Value>,
    path: Option<String>,
    values: Option<Value>,
    /// IS2's spelling of `values` (see [`address_values`]).
    value: Option<Value>,
}

/// Parses a decoded client message. On error, also returns the ack id if
/// one could be read, so that the error can answer it.
pub fn parse(value: Value) -> Result<Parsed, (RequestError, Option<Value>)> {
    if !value.is_object() {
        return Err((
            RequestError::new("invalid_message", "a message is a JSON object"),
            None,
        ));
    }
    if value.get("event").and_then(Value::as_str) == Some("ack") {
        return parse_answer(value);
    }
    let ack = value.get("ack").cloned();
    let raw: Raw = serde_json::from_value(value).map_err(|e| {
        (
            RequestError::new("invalid_message", e.to_string()),
            ack.clone(),
        )
    })?;
    let fail = |error: RequestError| Err((error, raw.ack.clone()));
    if let Some(ack) = &raw.ack {
        if !(ack.is_number() || ack.is_string()) {
            return fail(RequestError::new(
                "invalid_ack",
                "ack must be a number or a string",
            ));
        }
    }
    match parse_request(&raw) {
        Ok(request) => Ok(Parsed {
            request,
            ack: raw.ack.clone(),
        }),
        Err(error) => fail(error),
    }
}

/// A client's answer to a message the server asked it to acknowledge
/// (`ask`): `{"event":"ack","ack":ID,"data":…}` is the event `ack` to the
/// server's handlers with `data` `{"id":ID,"data":…}`, and no ack of its own.
fn parse_answer(value: Value) -> Result<Parsed, (RequestError, Option<Value>)> {
    let id = value.get("ack").and_then(Value::as_u64).ok_or_else(|| {
        let why =
            "an answer (\"event\":\"ack\") names the id it answers in \"ack\", a whole number";
        (RequestError::new("invalid_ack", why), None)
    })?;
    let data = value.get("data").cloned().unwrap_or(Value::Null);
    Ok(Parsed {
        request: Request::Event {
            event: "ack".into(),
            data: serde_json::json!({ "id": id, "data": data }),
            target: Target::Server,
            echo: true,
        },
        ack: None,
    })
}

/// Where a message is addressed: at most one of `room`, `to`, `broadcast`.
fn target(raw: &Raw) -> Result<Target, RequestError> {
    Ok(match (&raw.room, &raw.to, raw.broadcast) {
        (Some(room), None, None | Some(false)) => Target::Room(room_name(Some(room))?),
        (None, Some(to), None | Some(false)) => Target::Direct(ConnId::from_string(to.clone())),
        (None, None, Some(true)) => Target::Everyone,
        (None, None, None | Some(false)) => Target::Server,
        _ => {
            return Err(RequestError::new(
                "invalid_target",
                "use at most one of \"room\", \"to\" and \"broadcast\"",
            ))
        }
    })
}

fn parse_request(raw: &Raw) -> Result<Request, RequestError> {
    if let Some(path) = &raw.path {
        check_published_address(path).map_err(|why| RequestError::new("invalid_address", why))?;
        return Ok(Request::Address {
            path: path.clone(),
            values: address_values(raw.values.clone(), raw.value.clone())?,
        });
    }
    let Some(event) = raw.event.as_deref() else {
        return Err(RequestError::new(
            "invalid_message",
            "a message needs an \"event\" (or a \"path\")",
        ));
    };
    match event {
        "join" => {
            let room = room_name(raw.room.as_deref())?;
            match &raw.since {
                None | Some(Value::Null) => Ok(Request::Join(room)),
                Some(since) => Ok(Request::Recover {
                    room,
                    since: since_field(since)?,
                }),
            }
        }
        "history" => Ok(Request::History {
            room: room_name(raw.room.as_deref())?,
            after: whole_number(&raw.data, "after", 0)?,
            limit: whole_number(&raw.data, "limit", DEFAULT_HISTORY_PAGE)?
                .clamp(1, MAX_HISTORY_PAGE as u64) as usize,
        }),
        "received" => received_field(&raw.data).map(Request::Received),
        "leave" => Ok(Request::Leave(room_name(raw.room.as_deref())?)),
        "rename" => {
            let name = raw
                .data
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            Ok(Request::Rename(user_name(name)?))
        }
        "users" => Ok(Request::Users {
            room: raw
                .room
                .as_deref()
                .map(|r| room_name(Some(r)))
                .transpose()?,
            after: match raw.data.get("after") {
                None | Some(Value::Null) => None,
                Some(Value::String(after)) => Some(after.clone()),
                Some(_) => {
                    return Err(RequestError::new(
                        "invalid_message",
                        "\"after\" is the last id of the previous page",
                    ))
                }
            },
        }),
        "subscribe" => {
            let pattern = pattern_field(&raw.data)?;
            Pattern::parse(pattern)
                .map(Request::Subscribe)
                .map_err(|why| RequestError::new("invalid_pattern", why))
        }
        "unsubscribe" => Ok(Request::Unsubscribe(pattern_field(&raw.data)?.to_owned())),
        "refresh" => raw
            .data
            .get("token")
            .and_then(Value::as_str)
            .map(|token| Request::Refresh(token.to_owned()))
            .ok_or_else(|| RequestError::new("invalid_token", "data.token must be a string")),
        "stream:start" => match target(raw)? {
            Target::Server => Err(RequestError::new(
                "invalid_target",
                "a stream goes to a \"room\", a connection (\"to\") or everyone (\"broadcast\")",
            )),
            target => Ok(Request::StreamStart(target)),
        },
        _ => {
            check_event_name(event)?;
            Ok(Request::Event {
                event: event.to_owned(),
                data: raw.data.clone(),
                target: target(raw)?,
                echo: raw.echo.unwrap_or(true),
            })
        }
    }
}

/// The values of an address message, from its `values` or its `value`
/// field (IS2 writes `value`), the same for a client's message, the HTTP
/// API and the ZeroMQ inputs:
///
/// - `values` is an array; anything else is refused (`invalid_message`);
/// - `value` is an array too, or one value, which stands for a list of one
///   (`"value":5` is `"values":[5]`);
/// - neither (or `null`) is no values; both are refused, since one of them
///   would be lost.
pub fn address_values(
    values: Option<Value>,
    value: Option<Value>,
) -> Result<Vec<Value>, RequestError> {
    let given = |field: Option<Value>| field.filter(|v| !v.is_null());
    match (given(values), given(value)) {
        (Some(_), Some(_)) => Err(RequestError::new(
            "invalid_message",
            "give \"values\" or \"value\", not both",
        )),
        (Some(Value::Array(values)), None) | (None, Some(Value::Array(values))) => Ok(values),
        (None, None) => Ok(Vec::new()),
        (Some(_), None) => Err(RequestError::new(
            "invalid_message",
            "\"values\" must be an array (send a single value as \"value\")",
        )),
        (None, Some(one)) => Ok(vec![one]),
    }
}

/// The messages a `history` request returns when it names no `limit`.
const DEFAULT_HISTORY_PAGE: u64 = 100;
/// The most rooms one `received` may name.
const MAX_RECEIVED_ROOMS: usize = 1000;

/// A join's `since`: `{"epoch":E,"offset":N}`.
fn since_field(since: &Value) -> Result<Since, RequestError> {
    let epoch = since.get("epoch").and_then(Value::as_str);
    let offset = since.get("offset").and_then(Value::as_u64);
    match (epoch, offset) {
        (Some(epoch), Some(offset)) if epoch.len() <= MAX_NAME_LEN => Ok(Since {
            epoch: epoch.to_owned(),
            offset,
        }),
        _ => Err(RequestError::new(
            "invalid_message",
            "\"since\" is {\"epoch\": the room's epoch, \"offset\": a whole number}",
        )),
    }
}

/// An optional whole number in `data`, `default` when absent.
fn whole_number(data: &Value, field: &str, default: u64) -> Result<u64, RequestError> {
    match data.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value.as_u64().ok_or_else(|| {
            RequestError::new(
                "invalid_message",
                format!("\"{field}\" must be a whole number"),
            )
        }),
    }
}

/// A `received`'s data: an object of room → offset.
fn received_field(data: &Value) -> Result<Vec<(String, u64)>, RequestError> {
    let invalid = || {
        RequestError::new(
            "invalid_message",
            format!("\"received\" data is an object of at most {MAX_RECEIVED_ROOMS} rooms, each with the offset processed"),
        )
    };
    let rooms = data.as_object().ok_or_else(invalid)?;
    if rooms.len() > MAX_RECEIVED_ROOMS {
        return Err(invalid());
    }
    rooms
        .iter()
        .map(|(room, offset)| Ok((room.clone(), offset.as_u64().ok_or_else(invalid)?)))
        .collect()
}

fn pattern_field(data: &Value) -> Result<&str, RequestError> {
    data.get("pattern")
        .and_then(Value::as_str)
        .ok_or_else(|| RequestError::new("invalid_pattern", "data.pattern must be a string"))
}

/// Validates the name of an event a client (or the HTTP API) sends: 1 to 64
/// characters, no control characters, not one of the events only the server sends.
pub fn check_event_name(event: &str) -> Result<(), RequestError> {
    if RESERVED_EVENTS.contains(&event) {
        return Err(RequestError::new(
            "reserved_event",
            format!("\"{event}\" is sent by the server only"),
        ));
    }
    if event.is_empty() || event.len() > MAX_NAME_LEN || event.chars().any(char::is_control) {
        return Err(RequestError::new(
            "invalid_event",
            format!(
                "an event name has 1 to {MAX_NAME_LEN} characters, none of them control characters"
            ),
        ));
    }
    Ok(())
}

/// Validates a room name: 1 to 64 characters, no control characters.
pub fn room_name(room: Option<&str>) -> Result<String, RequestError> {
    match room {
        Some(room) if valid_label(room) => Ok(room.to_owned()),
        Some(_) => Err(RequestError::new(
            "invalid_room",
            format!(
                "a room name has 1 to {MAX_NAME_LEN} characters, none of them control, \
                 bidirectional-control or zero-width characters"
            ),
        )),
        None => Err(RequestError::new("invalid_room", "\"room\" is required")),
    }
}

/// Validates a user name: trimmed, 1 to 64 characters, no control characters.
pub fn user_name(name: &str) -> Result<String, RequestError> {
    let name = name.trim();
    if valid_label(name) {
        Ok(name.to_owned())
    } else {
        Err(RequestError::new(
            "invalid_name",
            format!(
                "a name has 1 to {MAX_NAME_LEN} characters, none of them control, \
                 bidirectional-control or zero-width characters"
            ),
        ))
    }
}

fn valid_label(text: &str) -> bool {
    !text.is_empty()
        && text.chars().count() <= MAX_NAME_LEN
        && !text.chars().any(|c| c.is_control() || is_invisible(c))
}

/// Characters that change how text around them is shown without showing
/// themselves: bidirectional controls (U+202E makes "alice" read "ecila")
/// and zero-width characters (two names that look the same, but are not).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// A message from the server, as clients receive it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outgoing<'a> {
    /// The event name.
    pub event: &'a str,
    /// The sender's id, for relayed events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<&'a str>,
    /// The sender's name, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_name: Option<&'a str>,
    /// The sender's profile (an object its grant gave), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_meta: Option<&'a Value>,
    /// The room, for room events and room user lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<&'a str>,
    /// The recipient, on a direct message: tells it apart from a broadcast.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<&'a str>,
    /// `true` on a message sent to every connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<bool>,
    /// The ack id this message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<&'a Value>,
    /// The id the server asks the client to answer this message with
    /// (`{"event":"ack","ack":ID,"data":…}`; a Socket.IO client's callback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ask: Option<u64>,
    /// The payload.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: &'a Value,
    /// The error, for a failed ack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a Value>,
    /// The message's number in its room's history. Last but for `epoch`:
    /// a cluster's store appends both to the JSON it is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The room's history the offset counts in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<&'a str>,
}

impl<'a> Outgoing<'a> {
    /// An event with data and nothing else.
    pub fn new(event: &'a str, data: &'a Value) -> Self {
        Outgoing {
            event,
            from: None,
            from_name: None,
            from_meta: None,
            room: None,
            to: None,
            broadcast: None,
            ack: None,
            ask: None,
            data,
            error: None,
            offset: None,
            epoch: None,
        }
    }
}

/// An address-style message, as clients and bridges receive it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AddressMessage<'a> {
    /// The address.
    pub path: &'a str,
    /// The values.
    pub values: &'a [Value],
}

/// How one connection's frames are encoded: its codec, and the shared
/// compression it agreed on, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// JSON or MessagePack.
    pub codec: Codec,
    /// permessage-deflate without server context takeover, if agreed.
    pub deflate: Option<SharedDeflate>,
}

impl Encoding {
    /// Encodes a value as a whole server frame for this encoding.
    pub fn frame<T: Serialize + ?Sized>(self, value: &T) -> Bytes {
        match self.deflate {
            None => self.codec.frame(value),
            // A Socket.IO connection is never given deflate (see `Hub::open`).
            Some(_) if self.codec == Codec::SocketIo => self.codec.frame(value),
            Some(deflate) => deflate.encode_frame(self.codec.opcode(), &self.codec.encode(value)),
        }
    }
}

/// A message encoded lazily, once per encoding, for many recipients.
pub(crate) struct Prepared<T: Serialize> {
    message: T,
    frames: RefCell<Vec<(Encoding, Bytes)>>,
}

impl<T: Serialize> Prepared<T> {
    pub fn new(message: T) -> Self {
        Prepared {
            message,
            frames: RefCell::new(Vec::new()),
        }
    }

    /// The whole frame for `encoding`, encoded on first use and shared after.
    pub fn frame(&self, encoding: Encoding) -> Bytes {
        if let Some((_, frame)) = self.frames.borrow().iter().find(|(e, _)| *e == encoding) {
            return frame.clone();
        }
        let frame = encoding.frame(&self.message);
        self.frames.borrow_mut().push((encoding, frame.clone()));
        frame
    }

    /// The message's JSON text alone, as other nodes get it: a slice of the
    /// uncompressed JSON frame (past its header), so it is encoded once for
    /// local JSON clients and the cluster together.
    pub fn json(&self) -> Bytes {
        let frame = self.frame(Encoding {
            codec: Codec::Json,
            deflate: None,
        });
        // A server frame is unmasked: 2 header bytes, plus 2 or 8 bytes of
        // extended length when the 7-bit length says 126 or 127 (RFC 6455 §5.2).
        let header = match frame[1] & 0x7F {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        frame.slice(header..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(value: Value) -> Request {
        parse(value).unwrap().request
    }

    #[test]
    fn invisible_and_bidi_characters_are_refused_in_names_and_rooms() {
        for bad in ["ali\u{202E}ce", "a\u{200B}lice", "\u{2067}x", "x\u{FEFF}"] {
            let rename = json!({"event":"rename","data":{"name":bad}});
            assert_eq!(parse(rename).unwrap_err().0.code, "invalid_name", "{bad:?}");
            let join = json!({"event":"join","room":bad});
            assert_eq!(parse(join).unwrap_err().0.code, "invalid_room", "{bad:?}");
        }
        assert_eq!(
            request(json!({"event":"rename","data":{"name":"Zoë 李"}})),
            Request::Rename("Zoë 李".into())
        );
    }

    #[test]
    fn an_ack_may_be_any_number_or_a_string() {
        for ack in [json!(1), json!(-3), json!(1.5), json!("x")] {
            let parsed = parse(json!({"event":"users","ack":ack})).unwrap();
            assert_eq!(parsed.ack, Some(ack));
        }
        let refused = parse(json!({"event":"users","ack":[1]})).unwrap_err();
        assert_eq!(refused.0.code, "invalid_ack");
    }

    #[test]
    fn parses_design_examples() {
        assert_eq!(
            request(json!({"event":"join","room":"lobby"})),
            Request::Join("lobby".into())
        );
        assert_eq!(
            request(json!({"event":"chat","room":"lobby","data":{"text":"hi"}})),
            Request::Event {
                event: "chat".into(),
                data: json!({"text":"hi"}),
                target: Target::Room("lobby".into()),
                echo: true
            }
        );
        assert_eq!(
            request(json!({"event":"rename","data":{"name":" alice "}})),
            Request::Rename("alice".into())
        );
        let parsed = parse(json!({"event":"sum","data":[1,2],"ack":7})).unwrap();
        assert_eq!(parsed.ack, Some(json!(7)));
        assert_eq!(
            request(json!({"path":"/sensors/motion","values":[1,0.5,"hall"]})),
            Request::Address {
                path: "/sensors/motion".into(),
                values: vec![json!(1), json!(0.5), json!("hall")]
            }
        );
    }

    #[test]
    fn refuses_bad_messages_with_codes() {
        let code = |v: Value| parse(v).unwrap_err().0.code;
        assert_eq!(code(json!([1, 2])), "invalid_message");
        assert_eq!(code(json!({"data": 1})), "invalid_message");
        assert_eq!(code(json!({"event":"join"})), "invalid_room");
        assert_eq!(code(json!({"event":"ready"})), "reserved_event");
        assert_eq!(
            code(json!({"event":"x","room":"a","to":"b"})),
            "invalid_target"
        );
        assert_eq!(
            code(json!({"event":"rename","data":{"name":""}})),
            "invalid_name"
        );
        assert_eq!(code(json!({"path":"nope"})), "invalid_address");
        assert_eq!(code(json!({"path":"/a/*"})), "invalid_address");
        assert_eq!(
            code(json!({"event":"subscribe","data":{"pattern":"/a/**/b"}})),
            "invalid_pattern"
        );
        assert_eq!(code(json!({"event":"x","ack":{"a":1}})), "invalid_ack");
        assert_eq!(code(json!({"event":"ack","ack":"x"})), "invalid_ack");
        let (_, ack) = parse(json!({"event":"join","ack":3})).unwrap_err();
        assert_eq!(ack, Some(json!(3)));
    }

    #[test]
    fn a_clients_answer_to_an_ask_is_the_event_ack_without_an_ack() {
        let parsed = parse(json!({"event":"ack","ack":7,"data":["yes",2]})).unwrap();
        assert_eq!(parsed.ack, None);
        assert_eq!(
            parsed.request,
            Request::Event {
                event: "ack".into(),
                data: json!({"id":7,"data":["yes",2]}),
                target: Target::Server,
                echo: true
            }
        );
    }

    #[test]
    fn address_values_from_values_or_is2s_value() {
        let values = |v: Value| match request(v) {
            Request::Address { values, .. } => values,
            other => panic!("not an address message: {other:?}"),
        };
        assert_eq!(
            values(json!({"path":"/a","values":[1,"x"]})),
            [json!(1), json!("x")]
        );
        assert_eq!(
            values(json!({"path":"/a","value":[1,"x"]})),
            [json!(1), json!("x")]
        );
        assert_eq!(values(json!({"path":"/a","value":5})), [json!(5)]);
        assert_eq!(
            values(json!({"path":"/a","value":{"k":1}})),
            [json!({"k":1})]
        );
        assert!(values(json!({"path":"/a"})).is_empty());
        assert!(values(json!({"path":"/a","value":null})).is_empty());
        let error = |v: Value| parse(v).unwrap_err().0;
        let both = error(json!({"path":"/a","values":[1],"value":[2]}));
        assert_eq!(both.code, "invalid_message");
        assert!(both.message.contains("not both"), "{}", both.message);
        let scalar = error(json!({"path":"/a","values":5}));
        assert_eq!(scalar.code, "invalid_message");
        assert!(scalar.message.contains("\"value\""), "{}", scalar.message);
    }

    #[test]
    fn msgpack_round_trip_and_lazy_frames() {
        let data = json!({"text":"hi","n":[1,2.5,true,null]});
        let out = Outgoing::new("chat", &data);
        let payload = Codec::MsgPack.encode(&out);
        let back = Codec::MsgPack.decode(&payload).unwrap();
        assert_eq!(back, json!({"event":"chat","data":data}));
        let prepared = Prepared::new(out);
        let json = Encoding {
            codec: Codec::Json,
            deflate: None,
        };
        let a = prepared.frame(json);
        let b = prepared.frame(json);
        assert_eq!(a.as_ptr(), b.as_ptr(), "encoded once and shared");
        assert_eq!(a[0], 0x81);
        let msgpack = Encoding {
            codec: Codec::MsgPack,
            deflate: None,
        };
        assert_eq!(prepared.frame(msgpack)[0], 0x82);
        let deflate = SharedDeflate {
            level: 6,
            window_bits: 15,
            threshold: 0,
        };
        let compressed = prepared.frame(Encoding {
            codec: Codec::Json,
            deflate: Some(deflate),
        });
        assert_eq!(compressed[0], 0xC1, "FIN, RSV1, text");
    }
}
