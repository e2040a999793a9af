//! Binary arguments. Socket.IO sends each binary value apart, as an
//! attachment, and leaves `{"_placeholder":true,"num":N}` in its place in
//! the JSON. The hub's data is JSON, so a binary value is held there as
//! `{"$binary":"<base64>"}`: a native client or the event proxy sees that
//! object, and a Socket.IO recipient gets a binary value again.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value};

/// The key of a binary value held in JSON.
pub const BINARY_KEY: &str = "$binary";

/// How deep placeholders are looked for: deeper JSON is left as it is
/// (and a hostile payload cannot make the walk recurse without bound).
const MAX_DEPTH: usize = 32;

/// Puts the attachments back in place of their placeholders, as
/// `{"$binary":…}`. Fails when a placeholder names no attachment or an
/// attachment is left unused.
pub fn reconstruct(value: &mut Value, attachments: &[Bytes]) -> Result<(), String> {
    let mut used = vec![false; attachments.len()];
    fill(value, attachments, &mut used, 0)?;
    if used.iter().all(|u| *u) {
        Ok(())
    } else {
        Err("an attachment has no placeholder".into())
    }
}

fn fill(
    value: &mut Value,
    attachments: &[Bytes],
    used: &mut [bool],
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    match value {
        Value::Array(items) => {
            for item in items {
                fill(item, attachments, used, depth + 1)?;
            }
        }
        Value::Object(map) => {
            if map.get("_placeholder") == Some(&Value::Bool(true)) {
                let num = map
                    .get("num")
                    .and_then(Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n < attachments.len())
                    .ok_or("a placeholder names no attachment")?;
                used[num] = true;
                *value = binary_value(&attachments[num]);
                return Ok(());
            }
            for item in map.values_mut() {
                fill(item, attachments, used, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `{"$binary":"<base64>"}`.
pub fn binary_value(bytes: &[u8]) -> Value {
    let mut map = Map::new();
    map.insert(BINARY_KEY.into(), Value::String(STANDARD.encode(bytes)));
    Value::Object(map)
}

/// Takes the binary values (`{"$binary":…}` with valid base64) out of
/// `value`, leaving placeholders: the attachments, in order.
pub fn deconstruct(value: &mut Value) -> Vec<Bytes> {
    let mut attachments = Vec::new();
    take(value, &mut attachments, 0);
    attachments
}

fn take(value: &mut Value, attachments: &mut Vec<Bytes>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Array(items) => {
            for item in items {
                take(item, attachments, depth + 1);
            }
        }
        Value::Object(map) => {
            if let Some(bytes) = as_binary(map) {
                let mut placeholder = Map::new();
                placeholder.insert("_placeholder".into(), Value::Bool(true));
                placeholder.insert("num".into(), Value::from(attachments.len()));
                attachments.push(bytes);
                *value = Value::Object(placeholder);
                return;
            }
            for item in map.values_mut() {
                take(item, attachments, depth + 1);
            }
        }
        _ => {}
    }
}

fn as_binary(map: &Map<String, Value>) -> Option<Bytes> {
    if map.len() != 1 {
        return None;
    }
    let text = map.get(BINARY_KEY)?.as_str()?;
    STANDARD.decode(text).ok().map(Bytes::from)
}

/// Whether `value` holds a binary value anywhere (checked before paying
/// for a copy to take them out).
pub fn has_binary(value: &Value) -> bool {
    fn walk(value: &Value, depth: usize) -> bool {
        match value {
            _ if depth > MAX_DEPTH => false,
            Value::Array(items) => items.iter().any(|v| walk(v, depth + 1)),
            Value::Object(map) => {
                map.len() == 1 && map.get(BINARY_KEY).is_some_and(Value::is_string)
                    || map.values().any(|v| walk(v, depth + 1))
            }
            _ => false,
        }
    }
    walk(value, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let mut value = json!(["up", {"file": {"_placeholder": true, "num": 0}, "n": 1}]);
        let attachments = [Bytes::from_static(&[1, 2, 3])];
        reconstruct(&mut value, &attachments).unwrap();
        assert_eq!(value, json!(["up", {"file": {"$binary": "AQID"}, "n": 1}]));
        assert!(has_binary(&value));
        let taken = deconstruct(&mut value);
        assert_eq!(taken, attachments);
        assert_eq!(
            value,
            json!(["up", {"file": {"_placeholder": true, "num": 0}, "n": 1}])
        );
    }

    #[test]
    fn bad_placeholders_are_refused() {
        let one = [Bytes::from_static(b"x")];
        let mut missing = json!([{"_placeholder": true, "num": 1}]);
        assert!(reconstruct(&mut missing, &one).is_err());
        let mut unused = json!(["a"]);
        assert!(reconstruct(&mut unused, &one).is_err());
        let mut negative = json!([{"_placeholder": true, "num": -1}]);
        assert!(reconstruct(&mut negative, &one).is_err());
    }

    #[test]
    fn not_binary_is_left_alone() {
        let mut value = json!({"$binary": "not base64!", "x": 1});
        assert!(deconstruct(&mut value).is_empty());
        assert!(!has_binary(&json!({"$binary": 5})));
    }
}
