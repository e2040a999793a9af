//! The frame layer (RFC 6455 §5.2): opcodes, header parsing and encoding.
//!
//! Parsing only reads the header; the payload stays in the caller's buffer so
//! that it can be unmasked in place and handed out without a copy.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::mask::apply_mask;

/// A frame opcode (RFC 6455 §5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a UTF-8 text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: starts or answers the closing handshake.
    Close,
    /// 0x9: asks the peer for a pong.
    Ping,
    /// 0xA: answers a ping, or serves as a one-way heartbeat.
    Pong,
}

impl OpCode {
    /// Decodes the low four bits of the first header byte; reserved values
    /// (0x3–0x7, 0xB–0xF) are a protocol error (RFC 6455 §5.2).
    pub fn from_bits(bits: u8) -> Result<OpCode, ProtocolError> {
        match bits {
            0x0 => Ok(OpCode::Continuation),
            0x1 => Ok(OpCode::Text),
            0x2 => Ok(OpCode::Binary),
            0x8 => Ok(OpCode::Close),
            0x9 => Ok(OpCode::Ping),
            0xA => Ok(OpCode::Pong),
            other => Err(ProtocolError::ReservedOpCode(other)),
        }
    }

    /// The four-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Control frames are close, ping and pong (RFC 6455 §5.5).
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// The largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The largest header: 2 bytes, an 8-byte length and a 4-byte mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// RSV1, which permessage-deflate uses to mark a compressed message.
    pub rsv1: bool,
    /// RSV2, unused by any extension this crate knows.
    pub rsv2: bool,
    /// RSV3, unused by any extension this crate knows.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold the whole header, and
    /// otherwise the header with its length in bytes. Only the checks that need
    /// nothing but the header bytes happen here (reserved opcodes, control
    /// frame rules of RFC 6455 §5.5, the 63-bit length of §5.2); the rules
    /// that depend on the connection's state are checked by the caller.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let opcode = OpCode::from_bits(b0 & 0x0F)?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let short_len = b1 & 0x7F;
        let (payload_len, mut pos) = match short_len {
            126 => {
                let Some(bytes) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u16::from_be_bytes([bytes[0], bytes[1]]) as u64, 4)
            }
            127 => {
                let Some(bytes) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut raw = [0u8; 8];
                raw.copy_from_slice(bytes);
                let len = u64::from_be_bytes(raw);
                // RFC 6455 §5.2: the most significant bit MUST be 0.
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidLength);
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        if opcode.is_control() {
            // RFC 6455 §5.5: control frames are never fragmented and carry at
            // most 125 bytes.
            if !fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        let mask = if masked {
            let Some(bytes) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([bytes[0], bytes[1], bytes[2], bytes[3]])
        } else {
            None
        };
        let header = FrameHeader {
            fin,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }

    /// Appends this header to `dst`, using the shortest length encoding.
    pub fn encode(&self, dst: &mut BytesMut) {
        let mut b0 = self.opcode.bits();
        if self.fin {
            b0 |= 0x80;
        }
        if self.rsv1 {
            b0 |= 0x40;
        }
        if self.rsv2 {
            b0 |= 0x20;
        }
        if self.rsv3 {
            b0 |= 0x10;
        }
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        dst.reserve(MAX_HEADER_LEN);
        dst.put_u8(b0);
        match self.payload_len {
            len @ 0..=125 => dst.put_u8(mask_bit | len as u8),
            len @ 126..=0xFFFF => {
                dst.put_u8(mask_bit | 126);
                dst.put_u16(len as u16);
            }
            len => {
                dst.put_u8(mask_bit | 127);
                dst.put_u64(len);
            }
        }
        if let Some(key) = self.mask {
            dst.put_slice(&key);
        }
    }

    /// The encoded length of this header.
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }
}

/// Encodes a whole unmasked frame (as a server sends it) into one buffer.
///
/// This is how a broadcast is prepared once and then shared by every
/// recipient: the result can be queued on many server connections with
/// `Connection::send_encoded` without being copied again.
pub fn encode_server_frame(opcode: OpCode, rsv1: bool, payload: &[u8]) -> Bytes {
    encode_server_fragment(opcode, true, rsv1, payload)
}

/// Encodes one unmasked frame of a message, the last one when `fin` is set
/// (a streamed message is sent frame by frame, each shared by its
/// recipients like [`encode_server_frame`]'s).
pub fn encode_server_fragment(opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        fin,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: None,
        payload_len: payload.len() as u64,
    };
    let mut out = BytesMut::with_capacity(header.encoded_len() + payload.len());
    header.encode(&mut out);
    out.put_slice(payload);
    out.freeze()
}

/// Appends a whole frame to `dst`, masking the copied payload when `mask` is set.
pub(crate) fn encode_frame_into(dst: &mut BytesMut, header: FrameHeader, payload: &[u8]) {
    header.encode(dst);
    let start = dst.len();
    dst.put_slice(payload);
    if let Some(key) = header.mask {
        apply_mask(&mut dst[start..], key, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(opcode: OpCode, len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len: len,
        }
    }

    #[test]
    fn rfc_examples_parse() {
        // RFC 6455 §5.7: single-frame unmasked "Hello".
        let (h, n) = FrameHeader::parse(&[0x81, 0x05, b'H']).unwrap().unwrap();
        assert_eq!(
            (h.opcode, h.fin, h.payload_len, h.mask, n),
            (OpCode::Text, true, 5, None, 2)
        );
        // 256 bytes binary, 16-bit length.
        let (h, n) = FrameHeader::parse(&[0x82, 0x7E, 0x01, 0x00])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        // 64 KiB binary, 64-bit length.
        let bytes = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let (h, n) = FrameHeader::parse(&bytes).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let mut buf = BytesMut::new();
        header(OpCode::Binary, 70000, Some([9, 8, 7, 6])).encode(&mut buf);
        for cut in 0..buf.len() {
            assert_eq!(FrameHeader::parse(&buf[..cut]), Ok(None), "cut {cut}");
        }
        assert!(FrameHeader::parse(&buf).unwrap().is_some());
    }

    #[test]
    fn header_level_violations() {
        assert_eq!(
            FrameHeader::parse(&[0x83, 0]),
            Err(ProtocolError::ReservedOpCode(3))
        );
        assert_eq!(
            FrameHeader::parse(&[0x8B, 0]),
            Err(ProtocolError::ReservedOpCode(0xB))
        );
        assert_eq!(
            FrameHeader::parse(&[0x09, 0]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            FrameHeader::parse(&[0x89, 126, 0, 126]),
            Err(ProtocolError::ControlFrameTooLong)
        );
        let huge = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&huge), Err(ProtocolError::InvalidLength));
    }

    #[test]
    fn encode_uses_shortest_length() {
        for (len, expect) in [(0u64, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let h = header(OpCode::Text, len, None);
            let mut buf = BytesMut::new();
            h.encode(&mut buf);
            assert_eq!(buf.len(), expect);
            assert_eq!(h.encoded_len(), expect);
            assert_eq!(FrameHeader::parse(&buf).unwrap(), Some((h, expect)));
        }
    }

    #[test]
    fn server_frame_is_header_plus_payload() {
        let frame = encode_server_frame(OpCode::Text, false, b"Hello");
        assert_eq!(&frame[..], &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
    }
}
