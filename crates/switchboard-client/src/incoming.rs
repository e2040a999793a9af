//! What the client receives, as one type for every event.

use serde_json::Value;

/// A message from the server, or an event of the client itself
/// (`reconnecting`, `reconnection_failed`).
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The event name; `address` for `{path, values}` messages.
    pub event: String,
    /// The payload.
    pub data: Value,
    /// The sender's id, on relayed events.
    pub from: Option<String>,
    /// The sender's name, when it has one.
    pub from_name: Option<String>,
    /// The room, on room events and user lists.
    pub room: Option<String>,
    /// The address, on address messages.
    pub path: Option<String>,
    /// The values, on address messages.
    pub values: Vec<Value>,
    /// The message as received (`Value::Null` for the client's own events).
    pub raw: Value,
}

impl Incoming {
    /// An event of the client itself.
    pub(crate) fn local(event: &str, data: Value) -> Incoming {
        Incoming {
            event: event.to_owned(),
            data,
            from: None,
            from_name: None,
            room: None,
            path: None,
            values: Vec::new(),
            raw: Value::Null,
        }
    }

    /// Reads a server message; `None` if it is not an object with an event or a path.
    pub(crate) fn parse(raw: Value) -> Option<Incoming> {
        let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
        let path = text("path");
        let event = match (text("event"), &path) {
            (Some(event), _) => event,
            (None, Some(_)) => "address".to_owned(),
            (None, None) => return None,
        };
        Some(Incoming {
            event,
            data: raw.get("data").cloned().unwrap_or(Value::Null),
            from: text("from"),
            from_name: text("from_name"),
            room: text("room"),
            values: raw
                .get("values")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            path,
            raw,
        })
    }
}
