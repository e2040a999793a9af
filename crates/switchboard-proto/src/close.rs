//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use bytes::{BufMut, Bytes, BytesMut};

pub use crate::close_code::CloseCode;
use crate::error::ProtocolError;
use crate::utf8;

/// The content of a close frame: a code and a UTF-8 reason, or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloseFrame {
    /// The status code; `None` when the frame had an empty body.
    pub code: Option<CloseCode>,
    /// The reason, at most 123 bytes of UTF-8 (RFC 6455 §5.5: 125 minus the code).
    pub reason: String,
}

/// The largest reason that fits in a close frame next to its 2-byte code.
pub const MAX_CLOSE_REASON: usize = 123;

impl CloseFrame {
    /// A close frame with a code and a reason.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        CloseFrame {
            code: Some(code),
            reason: reason.into(),
        }
    }

    /// Parses the payload of a received close frame (RFC 6455 §5.5.1).
    ///
    /// A one-byte body, a code that may not be on the wire and a reason that is
    /// not UTF-8 are protocol errors (the last one closes with 1007).
    pub fn parse(payload: &[u8]) -> Result<CloseFrame, ProtocolError> {
        match payload.len() {
            0 => Ok(CloseFrame::default()),
            1 => Err(ProtocolError::CloseFrameOneByte),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = utf8::validate(&payload[2..])
                    .map_err(|_| ProtocolError::InvalidUtf8)?
                    .to_owned();
                Ok(CloseFrame {
                    code: Some(code),
                    reason,
                })
            }
        }
    }

    /// Encodes the close frame body. The reason is cut at a character boundary
    /// so that the body never exceeds the 125 bytes a control frame may carry.
    pub fn encode(&self) -> Bytes {
        let Some(code) = self.code else {
            return Bytes::new();
        };
        let reason = truncate_at_char_boundary(&self.reason, MAX_CLOSE_REASON);
        let mut body = BytesMut::with_capacity(2 + reason.len());
        body.put_u16(code.0);
        body.put_slice(reason.as_bytes());
        body.freeze()
    }
}

fn truncate_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_follows_rfc_ranges() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ] {
            assert!(CloseCode(code).is_valid_on_wire(), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000] {
            assert!(!CloseCode(code).is_valid_on_wire(), "{code}");
        }
    }

    #[test]
    fn parse_rejects_one_byte_bad_code_and_bad_utf8() {
        assert_eq!(
            CloseFrame::parse(&[3]),
            Err(ProtocolError::CloseFrameOneByte)
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xEC]),
            Err(ProtocolError::InvalidCloseCode(1004))
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xE8, 0xFF]),
            Err(ProtocolError::InvalidUtf8)
        );
        let ok = CloseFrame::parse(&[0x03, 0xE8, b'o', b'k']).unwrap();
        assert_eq!(ok, CloseFrame::new(CloseCode::NORMAL, "ok"));
    }

    #[test]
    fn encode_truncates_long_reason_on_char_boundary() {
        let reason = "é".repeat(100);
        let body = CloseFrame::new(CloseCode::NORMAL, reason).encode();
        assert!(body.len() <= 125);
        let back = CloseFrame::parse(&body).unwrap();
        assert!(back.reason.chars().all(|c| c == 'é'));
    }
}
