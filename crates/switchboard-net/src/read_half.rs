//! The read side of a WebSocket's stream.
//!
//! TCP is read by readiness: the read buffer is reserved only when bytes are
//! there to read, and given back when a read would block with nothing
//! pending, so an idle connection holds no read buffer at all. Other streams
//! (TLS, hyper's upgraded connections) are read through `AsyncRead`, which
//! needs the buffer before it can say whether bytes are there; it is given
//! back in the same way when the read is pending with nothing in it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio::net::tcp::OwnedReadHalf;

/// How long a dropped reader keeps draining the peer's bytes. Closing a TCP
/// socket with unread data makes the kernel send a reset, which can destroy
/// the close frame (with its code) before the peer reads it.
const LINGER: Duration = Duration::from_secs(1);

pub(crate) enum ReadHalf {
    Tcp(OwnedReadHalf),
    Other(Box<dyn AsyncRead + Send + Unpin>),
    /// Handed to the linger task.
    Gone,
}

impl ReadHalf {
    /// Reads once, appending to `buf`; 0 means end of stream.
    pub async fn read_into(&mut self, buf: &mut BytesMut, size: usize) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read_into(cx, buf, size)).await
    }

    /// Reads once if bytes are there, appending to `buf`; 0 means end of
    /// stream. A TCP socket reserves `size` bytes only once it is readable,
    /// and an empty buffer is given back while the socket is idle.
    pub fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
        size: usize,
    ) -> Poll<io::Result<usize>> {
        match self {
            ReadHalf::Tcp(tcp) => loop {
                std::task::ready!(tcp.as_ref().poll_read_ready(cx))?;
                reserve(buf, size);
                match tcp.try_read_buf(buf) {
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        if buf.is_empty() {
                            // Nothing pending: give the buffer back while idle.
                            *buf = BytesMut::new();
                        }
                    }
                    result => return Poll::Ready(result),
                }
            },
            ReadHalf::Other(io) => {
                reserve(buf, size);
                let read = tokio_util::io::poll_read_buf(Pin::new(io), cx, buf);
                if read.is_pending() && buf.is_empty() {
                    // Idle: 8 KiB per connection otherwise (measured on
                    // 1000 idle wss connections), for one allocation per wakeup.
                    *buf = BytesMut::new();
                }
                read
            }
            ReadHalf::Gone => Poll::Ready(Ok(0)),
        }
    }

    /// Drains the peer's remaining bytes in the background, for a while
    /// (see [`LINGER`]), then drops the stream.
    pub fn linger(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut half = std::mem::replace(self, ReadHalf::Gone);
        if matches!(half, ReadHalf::Gone) {
            return;
        }
        runtime.spawn(async move {
            let mut sink = BytesMut::new();
            let drain = async {
                while let Ok(n) = half.read_into(&mut sink, 2048).await {
                    if n == 0 {
                        break;
                    }
                    sink.clear();
                }
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}

fn reserve(buf: &mut BytesMut, size: usize) {
    if buf.capacity() - buf.len() < size / 2 {
        buf.reserve(size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn an_idle_stream_holds_no_read_buffer() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut half = ReadHalf::Other(Box::new(near));
        let mut buf = BytesMut::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(half.poll_read_into(&mut cx, &mut buf, 8192).is_pending());
        assert_eq!(buf.capacity(), 0, "given back while nothing is pending");

        far.write_all(b"hello").await.unwrap();
        let read = half.read_into(&mut buf, 8192).await.unwrap();
        assert_eq!((read, &buf[..]), (5, &b"hello"[..]));
        assert!(half.poll_read_into(&mut cx, &mut buf, 8192).is_pending());
        assert!(buf.capacity() > 0, "kept while it holds bytes");
    }
}
