//! The client side of a WebSocket read as raw frames, for load generators
//! that must cost less per message than the server they measure: frames
//! are parsed in place in one buffer, with no allocation, lock or UTF-8
//! check per message (the server's frames are unmasked, RFC 6455 §5.1).
//! What the generator sends (a join, a close) goes out masked, as a
//! client's frames must.

use std::io;

use bytes::{Buf, BytesMut};
use switchboard_proto::frame::{FrameHeader, OpCode};
use switchboard_proto::mask::apply_mask;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest frame accepted: a benchmark's messages are small, and a
/// length past this is a broken stream.
const MAX_FRAME: u64 = 16 << 20;
/// Bytes read at a time at least.
const READ_SIZE: usize = 64 * 1024;

/// A connection's frames, read into one buffer.
pub struct RawFrames {
    stream: TcpStream,
    buf: BytesMut,
}

/// One frame from the server.
pub struct Frame<'a> {
    pub opcode: OpCode,
    pub fin: bool,
    pub payload: &'a [u8],
}

impl RawFrames {
    /// Frames of `stream`, `leftover` being what was read past the handshake.
    pub fn new(stream: TcpStream, leftover: BytesMut) -> RawFrames {
        RawFrames {
            stream,
            buf: leftover,
        }
    }

    /// Reads once (waiting until bytes come); false at the end of the stream.
    pub async fn fill(&mut self) -> io::Result<bool> {
        self.buf.reserve(READ_SIZE);
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    /// Calls `each` for every complete frame read so far, in order, and
    /// drops them from the buffer.
    pub fn drain(&mut self, mut each: impl FnMut(Frame<'_>)) -> io::Result<()> {
        let mut at = 0;
        while let Some((header, header_len)) = frame_at(&self.buf[at..])? {
            let start = at + header_len;
            let len = header.payload_len as usize;
            each(Frame {
                opcode: header.opcode,
                fin: header.fin,
                payload: &self.buf[start..start + len],
            });
            at = start + len;
        }
        self.buf.advance(at);
        Ok(())
    }

    /// Sends one masked frame.
    pub async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&masked_frame(opcode, payload)).await
    }
}

/// The header of the complete frame `bytes` starts with (parsed by the
/// protocol core) and the header's length; `None` if the frame is not all
/// there yet.
fn frame_at(bytes: &[u8]) -> io::Result<Option<(FrameHeader, usize)>> {
    let Some((header, header_len)) =
        FrameHeader::parse(bytes).map_err(|e| broken(&e.to_string()))?
    else {
        return Ok(None);
    };
    if header.mask.is_some() {
        return Err(broken("a masked frame from the server"));
    }
    if header.payload_len > MAX_FRAME {
        return Err(broken("a frame over 16 MiB"));
    }
    let complete = bytes.len() as u64 >= header_len as u64 + header.payload_len;
    Ok(complete.then_some((header, header_len)))
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// A final client frame: masked, with a fixed key (the generator is no
/// browser; a server unmasks whatever key it gets).
pub fn masked_frame(opcode: OpCode, payload: &[u8]) -> BytesMut {
    const KEY: [u8; 4] = [0x5b, 0x1e, 0xa2, 0x37];
    let header = FrameHeader {
        fin: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: Some(KEY),
        payload_len: payload.len() as u64,
    };
    let mut frame = BytesMut::with_capacity(header.encoded_len() + payload.len());
    header.encode(&mut frame);
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], KEY, 0);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_only_when_complete() {
        let found = |bytes: &[u8]| {
            frame_at(bytes)
                .unwrap()
                .map(|(header, header_len)| (header_len, header.payload_len))
        };
        assert_eq!(found(&[0x81]), None);
        assert_eq!(found(&[0x81, 3, b'a', b'b']), None);
        assert_eq!(found(&[0x81, 3, b'a', b'b', b'c']), Some((2, 3)));
        let mut long = vec![0x82, 126, 0x01, 0x00];
        assert_eq!(found(&long), None);
        long.resize(4 + 256, 0);
        assert_eq!(found(&long), Some((4, 256)));
        assert!(frame_at(&[0x81, 0x83, 0, 0, 0, 0]).is_err(), "masked");
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(frame_at(&huge).is_err(), "over the limit");
    }

    #[test]
    fn a_masked_frame_unmasks_to_its_payload() {
        let frame = masked_frame(OpCode::Text, b"hello");
        assert_eq!(frame[0], 0x81);
        assert_eq!(frame[1], 0x80 | 5);
        let key = &frame[2..6];
        let payload: Vec<u8> = frame[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(payload, b"hello");
        assert_eq!(masked_frame(OpCode::Text, &[0; 300])[1], 0x80 | 126);
    }
}
