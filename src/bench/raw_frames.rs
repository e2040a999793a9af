//! The client side of a WebSocket read as raw frames, for load generators
//! that must cost less per message than the server they measure: frames
//! are parsed in place in one buffer, with no allocation, lock or UTF-8
//! check per message (the server's frames are unmasked, RFC 6455 §5.1).
//! What the generator sends (a join, a close) goes out masked, as a
//! client's frames must.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest frame accepted: a benchmark's messages are small, and a
/// length past this is a broken stream.
const MAX_FRAME: u64 = 16 << 20;
/// Bytes read at a time at least.
const READ_SIZE: usize = 64 * 1024;

/// Frame opcodes (RFC 6455 §5.2).
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;

/// A connection's frames, read into one buffer.
pub struct RawFrames {
    stream: TcpStream,
    buf: BytesMut,
}

/// One frame from the server.
pub struct Frame<'a> {
    pub opcode: u8,
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
        while let Some((header, len)) = frame_at(&self.buf[at..])? {
            let start = at + header;
            let first = self.buf[at];
            each(Frame {
                opcode: first & 0x0F,
                fin: first & 0x80 != 0,
                payload: &self.buf[start..start + len],
            });
            at = start + len;
        }
        self.buf.advance(at);
        Ok(())
    }

    /// Sends one masked frame.
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&masked_frame(opcode, payload)).await
    }
}

/// The header length and payload length of the complete frame `bytes`
/// starts with; `None` if it is not all there yet.
fn frame_at(bytes: &[u8]) -> io::Result<Option<(usize, usize)>> {
    let [_, second, ..] = *bytes else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err(broken("a masked frame from the server"));
    }
    let (header, len) = match second & 0x7F {
        126 if bytes.len() >= 4 => (4, u64::from(u16::from_be_bytes([bytes[2], bytes[3]]))),
        127 if bytes.len() >= 10 => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&bytes[2..10]);
            (10, u64::from_be_bytes(len))
        }
        126 | 127 => return Ok(None),
        len => (2, u64::from(len)),
    };
    if len > MAX_FRAME {
        return Err(broken("a frame over 16 MiB"));
    }
    let len = len as usize;
    Ok((bytes.len() >= header + len).then_some((header, len)))
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A final client frame: masked, with a fixed key (the generator is no
/// browser; a server unmasks whatever key it gets).
pub fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x5b, 0x1e, 0xa2, 0x37];
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&KEY);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_only_when_complete() {
        assert_eq!(frame_at(&[0x81]).unwrap(), None);
        assert_eq!(frame_at(&[0x81, 3, b'a', b'b']).unwrap(), None);
        assert_eq!(
            frame_at(&[0x81, 3, b'a', b'b', b'c']).unwrap(),
            Some((2, 3))
        );
        let mut long = vec![0x82, 126, 0x01, 0x00];
        assert_eq!(frame_at(&long).unwrap(), None);
        long.resize(4 + 256, 0);
        assert_eq!(frame_at(&long).unwrap(), Some((4, 256)));
        assert!(frame_at(&[0x81, 0x83, 0, 0, 0, 0]).is_err(), "masked");
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(frame_at(&huge).is_err(), "over the limit");
    }

    #[test]
    fn a_masked_frame_unmasks_to_its_payload() {
        let frame = masked_frame(TEXT, b"hello");
        assert_eq!(frame[0], 0x81);
        assert_eq!(frame[1], 0x80 | 5);
        let key = &frame[2..6];
        let payload: Vec<u8> = frame[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(payload, b"hello");
        assert_eq!(masked_frame(TEXT, &[0; 300])[1], 0x80 | 126);
    }
}
