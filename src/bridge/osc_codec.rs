//! OSC packets to and from address messages, on the `rosc` codec.
//!
//! In: every message of a packet, bundles opened recursively (their time
//! tags are not waited for), becomes `{path, values}` with
//!
//! | OSC | JSON |
//! | --- | --- |
//! | `i` int32, `h` int64 | integer |
//! | `f` float32 | number, the shortest decimal that reads back as the same float32 (`0.1f` → `0.1`) |
//! | `d` float64 | number |
//! | `s` string, `c` char | string |
//! | `b` blob | array of byte values (`[0, 255, 7]`) |
//! | `T` / `F` | `true` / `false` |
//! | `N` nil, `I` impulse | `null` |
//! | `t` time tag | number of seconds since 1900 |
//! | `r` color, `m` MIDI | array of its 4 bytes |
//! | `[...]` array | array |
//!
//! (A NaN or infinite float, which JSON cannot hold, becomes `null`.)
//!
//! Out: each address message becomes one OSC message with integers that fit
//! in 32 bits as `i` (larger ones `h`), other numbers as `f`, strings `s`,
//! booleans `T`/`F`, `null` `N`, arrays as OSC arrays `[...]` and objects
//! as their JSON text in an `s`.

use rosc::{OscArray, OscMessage, OscPacket, OscType};
use serde_json::{Number, Value};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_507;
/// Bundles nested deeper than this are refused (before decoding, so a
/// crafted packet cannot exhaust the stack).
const MAX_BUNDLE_DEPTH: usize = 8;
/// Arrays nested deeper than this are refused, for the same reason.
const MAX_ARRAY_DEPTH: usize = 16;

/// Decodes one datagram after checking that its nesting is shallow.
pub(crate) fn decode(datagram: &[u8]) -> Result<OscPacket, String> {
    check_nesting(datagram, 0)?;
    match rosc::decoder::decode_udp(datagram) {
        Ok((_rest, packet)) => Ok(packet),
        Err(error) => Err(format!("not an OSC packet: {error:?}")),
    }
}

/// Walks bundles and type tag strings without decoding values, refusing
/// deep nesting. Anything else that is wrong is left to the decoder.
fn check_nesting(packet: &[u8], depth: usize) -> Result<(), String> {
    if let Some(mut rest) = packet.strip_prefix(b"#bundle\0") {
        if depth >= MAX_BUNDLE_DEPTH {
            return Err(format!("bundles nested more than {MAX_BUNDLE_DEPTH} deep"));
        }
        rest = rest.get(8..).unwrap_or_default(); // the time tag
        while let Some((size, tail)) = rest.split_first_chunk::<4>() {
            let size = (u32::from_be_bytes(*size) as usize).min(tail.len());
            check_nesting(&tail[..size], depth + 1)?;
            rest = &tail[size..];
        }
        return Ok(());
    }
    // A message: the address, padded to 4 bytes, then the type tags.
    let Some(end) = packet.iter().position(|&b| b == 0) else {
        return Ok(());
    };
    let tags = packet.get((end / 4 + 1) * 4..).unwrap_or_default();
    let tags = &tags[..tags.iter().position(|&b| b == 0).unwrap_or(tags.len())];
    let mut level = 0usize;
    for &tag in tags {
        match tag {
            b'[' => level += 1,
            b']' => level = level.saturating_sub(1),
            _ => {}
        }
        if level > MAX_ARRAY_DEPTH {
            return Err(format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"));
        }
    }
    Ok(())
}

/// The messages of a packet, bundles opened in order.
pub(crate) fn flatten(packet: OscPacket, out: &mut Vec<OscMessage>) {
    match packet {
        OscPacket::Message(message) => out.push(message),
        OscPacket::Bundle(bundle) => {
            for packet in bundle.content {
                flatten(packet, out);
            }
        }
    }
}

/// One OSC argument as JSON (see the module's table).
pub(crate) fn to_json(arg: &OscType) -> Value {
    match arg {
        OscType::Int(i) => Value::from(*i),
        OscType::Long(i) => Value::from(*i),
        OscType::Float(f) => {
            // Display gives the shortest decimal that reads back as this f32.
            let shortest = f.to_string().parse::<f64>().unwrap_or(f64::from(*f));
            number(shortest)
        }
        OscType::Double(d) => number(*d),
        OscType::String(s) => Value::from(s.as_str()),
        OscType::Char(c) => Value::from(c.to_string()),
        OscType::Blob(bytes) => Value::from(bytes.clone()),
        OscType::Bool(b) => Value::from(*b),
        OscType::Nil | OscType::Inf => Value::Null,
        OscType::Time(time) => {
            number(f64::from(time.seconds) + f64::from(time.fractional) / 4_294_967_296.0)
        }
        OscType::Color(c) => Value::from(vec![c.red, c.green, c.blue, c.alpha]),
        OscType::Midi(m) => Value::from(vec![m.port, m.status, m.data1, m.data2]),
        OscType::Array(array) => Value::Array(array.content.iter().map(to_json).collect()),
    }
}

fn number(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// One JSON value as an OSC argument (see the module's table).
pub(crate) fn to_osc(value: &Value) -> OscType {
    match value {
        Value::Null => OscType::Nil,
        Value::Bool(b) => OscType::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i32::try_from(i).map_or(OscType::Long(i), OscType::Int),
            (None, Some(f)) if n.is_u64() => OscType::Double(f),
            (None, Some(f)) => OscType::Float(f as f32),
            (None, None) => OscType::Nil,
        },
        Value::String(s) => OscType::String(s.clone()),
        Value::Array(items) => OscType::Array(OscArray {
            content: items.iter().map(to_osc).collect(),
        }),
        Value::Object(_) => OscType::String(value.to_string()),
    }
}

/// An address message as one OSC packet.
pub(crate) fn encode(path: &str, values: &[Value]) -> Result<Vec<u8>, String> {
    let message = OscMessage {
        addr: path.to_owned(),
        args: values.iter().map(to_osc).collect(),
    };
    let packet = rosc::encoder::encode(&OscPacket::Message(message))
        .map_err(|error| format!("cannot encode as OSC: {error:?}"))?;
    if packet.len() > MAX_DATAGRAM {
        return Err(format!(
            "{} bytes as OSC, more than a UDP datagram holds ({MAX_DATAGRAM})",
            packet.len()
        ));
    }
    Ok(packet)
}
