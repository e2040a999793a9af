//! A request body read as it arrives, for a [`Handler`](crate::Handler)
//! that streams it on ([`Handler::streams_body`](crate::Handler::streams_body)):
//! `Content-Length` or `Transfer-Encoding: chunked` (RFC 9112 §7.1),
//! decoded chunk by chunk, never held whole.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use switchboard_proto::HandshakeError;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;
/// The most of a body handed out at once.
const MAX_PIECE: usize = 64 * 1024;

/// How the body's end is known.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `Content-Length`: this many bytes are still to come.
    Length(u64),
    /// Chunked: this many bytes of the current chunk are still to come
    /// (0 between chunks).
    Chunked { left: u64 },
    /// The whole body has been read.
    Done,
}

/// A request body, read piece by piece as it arrives.
pub struct BodyStream<'a> {
    reader: &'a mut (dyn AsyncRead + Unpin + Send),
    buffer: BytesMut,
    framing: Framing,
    /// The longest wait for the next bytes.
    idle: Duration,
    read: u64,
}

impl std::fmt::Debug for BodyStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("framing", &self.framing)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl<'a> BodyStream<'a> {
    /// The body after a request head: `buffer` holds the bytes read past
    /// the head. `None` when the request announces no body it may stream
    /// (neither a length nor chunked).
    pub(crate) fn new(
        reader: &'a mut (dyn AsyncRead + Unpin + Send),
        buffer: BytesMut,
        length: Option<u64>,
        chunked: bool,
        idle: Duration,
    ) -> BodyStream<'a> {
        let framing = match (chunked, length) {
            (true, _) => Framing::Chunked { left: 0 },
            (false, Some(length)) if length > 0 => Framing::Length(length),
            (false, _) => Framing::Done,
        };
        BodyStream {
            reader,
            buffer,
            framing,
            idle,
            read: 0,
        }
    }

    /// Bytes of the body handed out so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The next piece of the body, as it arrives; `None` at its end. An
    /// error (400 malformed chunking, 400 ended early, 408 no bytes for
    /// the idle time) ends the body.
    pub async fn next(&mut self) -> Option<Result<Bytes, HandshakeError>> {
        let piece = self.next_piece().await;
        if piece.is_err() {
            self.framing = Framing::Done;
        }
        piece.transpose()
    }

    async fn next_piece(&mut self) -> Result<Option<Bytes>, HandshakeError> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(left) => {
                    let piece = self.take(left).await?;
                    let left = left - piece.len() as u64;
                    self.framing = if left == 0 {
                        Framing::Done
                    } else {
                        Framing::Length(left)
                    };
                    return Ok(Some(piece));
                }
                Framing::Chunked { left: 0 } => {
                    let size = self.chunk_size().await?;
                    if size == 0 {
                        self.trailers().await?;
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    self.framing = Framing::Chunked { left: size };
                }
                Framing::Chunked { left } => {
                    let piece = self.take(left).await?;
                    let left = left - piece.len() as u64;
                    if left == 0 {
                        // The CRLF that closes the chunk's data.
                        let end = self.line().await?;
                        if !end.is_empty() {
                            return Err(malformed("chunk data longer than its size"));
                        }
                    }
                    self.framing = Framing::Chunked { left };
                    return Ok(Some(piece));
                }
            }
        }
    }

    /// Up to `left` (and [`MAX_PIECE`]) bytes, reading if none are buffered.
    async fn take(&mut self, left: u64) -> Result<Bytes, HandshakeError> {
        if self.buffer.is_empty() {
            self.fill().await?;
        }
        let n = self.buffer.len().min(MAX_PIECE).min(left as usize);
        self.read += n as u64;
        Ok(self.buffer.split_to(n).freeze())
    }

    /// Reads more bytes within the idle time; the body ending is an error.
    async fn fill(&mut self) -> Result<(), HandshakeError> {
        match tokio::time::timeout(self.idle, self.reader.read_buf(&mut self.buffer)).await {
            Err(_) => Err(HandshakeError::new(408, "the body stopped arriving")),
            Ok(Err(_)) | Ok(Ok(0)) => Err(HandshakeError::new(400, "body ended early")),
            Ok(Ok(_)) => Ok(()),
        }
    }

    /// One line without its CRLF.
    async fn line(&mut self) -> Result<Bytes, HandshakeError> {
        loop {
            if let Some(at) = self.buffer.windows(2).position(|w| w == b"\r\n") {
                let line = self.buffer.split_to(at).freeze();
                self.buffer.advance(2);
                return Ok(line);
            }
            if self.buffer.len() > MAX_LINE {
                return Err(malformed("a chunk line is too long"));
            }
            self.fill().await?;
        }
    }

    /// A chunk-size line: hexadecimal digits, then optional extensions.
    async fn chunk_size(&mut self) -> Result<u64, HandshakeError> {
        let line = self.line().await?;
        let digits = line.split(|&b| b == b';').next().unwrap_or_default();
        let digits = std::str::from_utf8(digits).map_err(|_| malformed("bad chunk size"))?;
        let digits = digits.trim_end_matches([' ', '\t']);
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(malformed("bad chunk size"));
        }
        u64::from_str_radix(digits, 16).map_err(|_| malformed("bad chunk size"))
    }

    /// The trailer section after the last chunk, up to its empty line.
    async fn trailers(&mut self) -> Result<(), HandshakeError> {
        for _ in 0..64 {
            if self.line().await?.is_empty() {
                return Ok(());
            }
        }
        Err(malformed("too many trailer lines"))
    }
}

fn malformed(why: &str) -> HandshakeError {
    HandshakeError::new(400, format!("malformed chunked body: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pieces(wire: &[u8], length: Option<u64>, chunked: bool) -> Result<Vec<u8>, u16> {
        let mut reader = wire;
        let mut body = BodyStream::new(
            &mut reader,
            BytesMut::new(),
            length,
            chunked,
            Duration::from_secs(1),
        );
        let mut all = Vec::new();
        while let Some(piece) = body.next().await {
            all.extend_from_slice(&piece.map_err(|e| e.status())?);
        }
        assert_eq!(body.bytes_read(), all.len() as u64);
        Ok(all)
    }

    #[tokio::test]
    async fn chunked_bodies_are_decoded_with_extensions_and_trailers() {
        let wire = b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nExpires: never\r\n\r\n";
        assert_eq!(pieces(wire, None, true).await, Ok(b"hello world".to_vec()));
    }

    #[tokio::test]
    async fn a_length_body_ends_at_its_length() {
        assert_eq!(
            pieces(b"abcdefXYZ", Some(6), false).await,
            Ok(b"abcdef".to_vec())
        );
        assert_eq!(pieces(b"", None, false).await, Ok(Vec::new()));
    }

    #[tokio::test]
    async fn bad_chunking_and_early_ends_are_400() {
        for wire in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello!!\r\n0\r\n\r\n",
            b"5\r\nhel",
            b"-1\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            assert_eq!(pieces(wire, None, true).await, Err(400), "{wire:?}");
        }
        assert_eq!(pieces(b"abc", Some(6), false).await, Err(400));
    }
}
