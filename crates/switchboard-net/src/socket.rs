//! A WebSocket over any async byte stream, whole or split in two halves.
//!
//! The protocol core decides everything; this module only pumps it: read
//! bytes in, write what it wants to send, sleep until its next timeout. Both
//! halves share the core behind a short-lived lock; the write side of the
//! stream sits behind an async lock so that a reader can flush automatic
//! pongs and close replies itself.
//!
//! Timers (keepalive pings, pong deadline, idle and close timeouts) advance
//! while a task awaits [`Reader::next_event`] (or [`WebSocket::recv`]): a
//! socket nobody reads from is not watched.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use switchboard_proto::{
    CloseCode, CloseFrame, CloseInfo, Connection, Event, Fragment, Message, MessageKind, Role,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use switchboard_proto::deflate::{DeflateConfig, Negotiated};

use crate::chunks;
use crate::config::Config;
use crate::error::Error;
use crate::outbox::{BoxWrite, Outbox};
use crate::read_half::ReadHalf;
use crate::session::Session;

/// State shared by the two halves.
struct Shared {
    conn: Mutex<Connection>,
    output: tokio::sync::Mutex<Output>,
    /// Bytes taken from the core but not yet written (mirrors `Output::queued`).
    in_flight: AtomicUsize,
    /// A half queued bytes while the other held `output`; the holder flushes again.
    flush_wanted: AtomicBool,
    max_pending_send_bytes: usize,
}

/// The write side of the stream and what is waiting to go out on it.
struct Output {
    io: BoxWrite,
    chunks: VecDeque<Bytes>,
    queued: usize,
    shut_down: bool,
}

impl Shared {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the core half-updated
        // in a way that matters more than the panic itself; keep going.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes everything the core has queued; shuts the stream down once the
    /// core says the connection is finished.
    async fn flush(&self) -> Result<(), Error> {
        let mut output = self.output.lock().await;
        loop {
            self.flush_wanted.store(false, Ordering::Release);
            self.write_all_queued(&mut output).await?;
            drop(output);
            if !self.flush_wanted.load(Ordering::Acquire) {
                return Ok(());
            }
            output = self.output.lock().await;
        }
    }

    /// Like [`Shared::flush`], but leaves the work to whoever holds the write
    /// side right now instead of waiting for it (a reader must not block
    /// behind a writer stuck on a slow peer).
    async fn flush_if_free(&self) -> Result<(), Error> {
        self.flush_wanted.store(true, Ordering::Release);
        match self.output.try_lock() {
            Ok(mut output) => {
                self.flush_wanted.store(false, Ordering::Release);
                self.write_all_queued(&mut output).await
            }
            Err(_) => Ok(()),
        }
    }

    async fn write_all_queued(&self, output: &mut Output) -> Result<(), Error> {
        let mut wrote = false;
        loop {
            let finished = {
                let mut conn = self.conn();
                while let Some(chunk) = conn.poll_transmit() {
                    output.queued += chunk.len();
                    self.in_flight.fetch_add(chunk.len(), Ordering::Relaxed);
                    output.chunks.push_back(chunk);
                }
                conn.is_finished()
            };
            if output.chunks.is_empty() {
                if wrote {
                    output.io.flush().await?;
                }
                if finished && !output.shut_down {
                    output.shut_down = true;
                    // The peer may be gone already; the connection is over either way.
                    let _ = output.io.shutdown().await;
                }
                return Ok(());
            }
            if output.shut_down {
                return Err(Error::closed());
            }
            write_some(output).await?;
            wrote = true;
            self.in_flight.store(output.queued, Ordering::Relaxed);
        }
    }
}

/// One vectored write of the queued chunks; drops what was fully written.
async fn write_some(output: &mut Output) -> Result<(), Error> {
    let (io, chunks) = (&mut output.io, &output.chunks);
    let written =
        std::future::poll_fn(|cx| chunks::poll_write_front(Pin::new(&mut **io), cx, chunks))
            .await?;
    if written == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
    }
    output.queued -= written;
    chunks::advance(&mut output.chunks, written);
    Ok(())
}

/// A WebSocket connection: receive with [`WebSocket::recv`], send with
/// [`WebSocket::send`], or [`WebSocket::split`] it to do both from different tasks.
pub struct WebSocket {
    reader: Reader,
    writer: Writer,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket").finish_non_exhaustive()
    }
}

impl WebSocket {
    /// Wraps a stream whose handshake is done. `leftover` holds bytes read
    /// past the handshake, which belong to the WebSocket.
    pub fn from_stream<S>(stream: S, role: Role, config: &Config, leftover: BytesMut) -> WebSocket
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        Self::from_parts(
            ReadHalf::Other(Box::new(read)),
            Box::new(write),
            role,
            config,
            leftover,
        )
    }

    /// Wraps a TCP stream whose handshake is done, splitting it without a lock.
    pub fn from_tcp(
        stream: tokio::net::TcpStream,
        role: Role,
        config: &Config,
        leftover: BytesMut,
    ) -> WebSocket {
        let (read, write) = stream.into_split();
        Self::from_parts(ReadHalf::Tcp(read), Box::new(write), role, config, leftover)
    }

    fn from_parts(
        read: ReadHalf,
        write: BoxWrite,
        role: Role,
        config: &Config,
        leftover: BytesMut,
    ) -> WebSocket {
        let shared = Arc::new(Shared {
            conn: Mutex::new(Connection::new(
                role,
                config.protocol.clone(),
                Instant::now(),
            )),
            output: tokio::sync::Mutex::new(Output {
                io: write,
                chunks: VecDeque::new(),
                queued: 0,
                shut_down: false,
            }),
            in_flight: AtomicUsize::new(0),
            flush_wanted: AtomicBool::new(false),
            max_pending_send_bytes: config.max_pending_send_bytes,
        });
        let reader = Reader {
            shared: Arc::clone(&shared),
            io: read,
            // An empty leftover may still hold the handshake's buffer.
            buf: if leftover.is_empty() {
                BytesMut::new()
            } else {
                leftover
            },
            read_size: config.read_buffer_size,
            close_info: None,
            closing: None,
            primed: false,
        };
        WebSocket {
            reader,
            writer: Writer { shared },
        }
    }

    /// The next complete message; `None` once the connection has closed
    /// cleanly. Pings are answered and pongs noted on the way.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.reader.recv().await
    }

    /// The next event of any kind (see [`Reader::next_event`]).
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        self.reader.next_event().await
    }

    /// Sends a message and waits until it is written to the stream.
    pub async fn send(&mut self, message: Message) -> Result<(), Error> {
        self.writer.send(message).await
    }

    /// Queues a message without waiting for it to be written; it goes out
    /// with the next flush (at the latest before the next read).
    pub async fn feed(&mut self, message: Message) -> Result<(), Error> {
        self.writer.feed(message).await
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.writer.flush().await
    }

    /// Starts the closing handshake and waits for it to finish (or for
    /// `close_timeout`), discarding messages that arrive meanwhile.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<CloseInfo, Error> {
        self.writer.close(code, reason).await?;
        loop {
            match self.reader.next_event().await? {
                Event::Closed(info) => return Ok(info),
                _ => continue,
            }
        }
    }

    /// Delivers messages as fragments as they arrive (see [`Reader::set_streaming`]).
    pub fn set_streaming(&mut self, streaming: bool) {
        self.reader.set_streaming(streaming);
    }

    /// Bytes waiting to be written (the browser's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.writer.buffered_amount()
    }

    /// Takes the connection apart into a [`Session`] driven by one task.
    pub(crate) fn into_session(self, max_frames: usize, max_bytes: usize) -> Session {
        let WebSocket { mut reader, writer } = self;
        drop(writer);
        let read = std::mem::replace(&mut reader.io, ReadHalf::Gone);
        let leftover = std::mem::take(&mut reader.buf);
        let read_size = reader.read_size;
        let shared = Arc::clone(&reader.shared);
        drop(reader);
        // Both halves were just dropped, so this is the only handle left.
        let Ok(shared) = Arc::try_unwrap(shared) else {
            unreachable!("a WebSocket's halves are its only handles on its state")
        };
        let conn = shared
            .conn
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let output = shared.output.into_inner();
        let budget = conn.config().get_message_budget().cloned();
        let outbox = Outbox::new(output.io, max_frames, max_bytes, budget);
        Session::new(conn, read, outbox, leftover, read_size)
    }

    /// Turns on permessage-deflate as negotiated in the handshake.
    pub(crate) fn enable_deflate(&self, negotiated: &Negotiated, config: &DeflateConfig) {
        self.writer.shared.conn().set_deflate(negotiated, config);
    }

    /// Splits into a reader and a writer for use from different tasks.
    pub fn split(self) -> (Reader, Writer) {
        (self.reader, self.writer)
    }

    /// The writing half, to send from the task that also reads.
    pub fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }
}

/// The receiving half of a [`WebSocket`].
pub struct Reader {
    shared: Arc<Shared>,
    io: ReadHalf,
    buf: BytesMut,
    read_size: usize,
    close_info: Option<CloseInfo>,
    /// The `Closed` event, held while the close reply is flushed so that a
    /// cancelled `next_event` does not lose it.
    closing: Option<Event>,
    /// Whether the leftover bytes from the handshake were handed to the core.
    primed: bool,
}

/// How much to read next: the usual amount, or more for a large frame under
/// way, so that its payload is not copied each time the buffer grows. The
/// buffer grows at most by what it already holds, so a peer that announces a
/// huge frame and sends nothing gets no large allocation for free.
fn read_size_for(usual: usize, buf: &BytesMut, conn: &Connection) -> usize {
    let missing = conn.frame_in_progress().saturating_sub(buf.len());
    usual.max(missing.min(buf.len()))
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.io.linger();
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    /// The next complete message; `None` after a clean close.
    ///
    /// A connection failed by a protocol error yields that error once, then `None`.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        match self.next_data().await? {
            Ok(Event::Message(message)) => Some(Ok(message)),
            Ok(_) => Some(Err(Error::from(
                switchboard_proto::UsageError::FragmentState(
                    "streaming mode is on: use next_event or next_fragment",
                ),
            ))),
            Err(error) => Some(Err(error)),
        }
    }

    /// The next fragment in streaming mode; `None` after close.
    pub async fn next_fragment(&mut self) -> Option<Result<Fragment, Error>> {
        match self.next_data().await? {
            Ok(Event::Fragment(fragment)) => Some(Ok(fragment)),
            // A message that arrived before streaming was switched on: one
            // whole fragment.
            Ok(Event::Message(message)) => Some(Ok(Fragment {
                kind: message.kind(),
                payload: message.into_payload(),
                first: true,
                fin: true,
            })),
            Ok(_) => None,
            Err(error) => Some(Err(error)),
        }
    }

    /// The next message or fragment, skipping pings and pongs: `None` after
    /// a clean close, the protocol error once when the peer broke the protocol.
    async fn next_data(&mut self) -> Option<Result<Event, Error>> {
        loop {
            match self.next_event().await {
                Ok(Event::Ping(_) | Event::Pong(_)) => continue,
                Ok(Event::Closed(info)) => match info.cause {
                    switchboard_proto::CloseCause::Protocol(error) => {
                        return Some(Err(error.into()))
                    }
                    _ => return None,
                },
                Err(error) if error.is_closed() => return None,
                Err(error) => return Some(Err(error)),
                Ok(data) => return Some(Ok(data)),
            }
        }
    }

    /// The next event: a message or fragment, a ping or pong, or the close.
    ///
    /// After [`Event::Closed`] every call returns an error for which
    /// [`Error::is_closed`] holds. Cancel-safe: dropping the future loses no data.
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        if self.closing.is_some() {
            let _ = self.shared.flush().await;
            if let Some(event) = self.closing.take() {
                return Ok(event);
            }
        }
        loop {
            let (event, finished) = {
                let mut conn = self.shared.conn();
                if !self.primed {
                    self.primed = true;
                    if !self.buf.is_empty() {
                        conn.handle_bytes(&mut self.buf, Instant::now());
                    }
                }
                (conn.poll_event(), conn.is_finished())
            };
            if let Some(event) = event {
                if let Event::Closed(info) = &event {
                    self.close_info = Some(info.clone());
                    self.closing = Some(event);
                    // The close reply goes out if it can; the peer may be gone.
                    let _ = self.shared.flush().await;
                    if let Some(event) = self.closing.take() {
                        return Ok(event);
                    }
                    continue;
                }
                return Ok(event);
            }
            if finished {
                let _ = self.shared.flush().await;
                return Err(Error::closed());
            }
            self.shared.flush_if_free().await?;
            self.read_once().await?;
        }
    }

    /// Reads once from the stream, or lets a timer fire, and hands the
    /// result to the core.
    async fn read_once(&mut self) -> Result<(), Error> {
        let (deadline, read_size) = {
            let conn = self.shared.conn();
            (
                conn.poll_timeout(),
                read_size_for(self.read_size, &self.buf, &conn),
            )
        };
        let read = self.io.read_into(&mut self.buf, read_size);
        let read = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), read).await.ok(),
            None => Some(read.await),
        };
        let mut conn = self.shared.conn();
        match read {
            None => conn.handle_timeout(Instant::now()),
            Some(Ok(0)) => conn.handle_eof(),
            Some(Ok(_)) => conn.handle_bytes(&mut self.buf, Instant::now()),
            Some(Err(error)) => {
                conn.handle_eof();
                return Err(error.into());
            }
        }
        Ok(())
    }

    /// Delivers messages as [`Event::Fragment`]s as their frames arrive,
    /// without assembling them, from the next message on.
    pub fn set_streaming(&mut self, streaming: bool) {
        self.shared.conn().set_streaming(streaming);
    }

    /// How the connection closed, once it has.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close_info.as_ref()
    }
}

/// The sending half of a [`WebSocket`]. Cheap to clone: clones send on the
/// same connection, one whole message at a time.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("buffered", &self.buffered_amount())
            .finish()
    }
}

impl Writer {
    /// Sends a message and waits until it is written.
    pub async fn send(&self, message: Message) -> Result<(), Error> {
        {
            let mut conn = self.shared.conn();
            conn.send_message(message)?;
            conn.handle_data_sent(Instant::now());
        }
        self.shared.flush().await
    }

    /// Queues a message; waits only when more than `max_pending_send_bytes`
    /// are buffered (backpressure).
    pub async fn feed(&self, message: Message) -> Result<(), Error> {
        let pending = {
            let mut conn = self.shared.conn();
            conn.send_message(message)?;
            conn.handle_data_sent(Instant::now());
            conn.pending_send_bytes()
        };
        self.backpressure(pending).await
    }

    /// Queues a frame encoded once for many connections (a broadcast), see
    /// [`switchboard_proto::frame::encode_server_frame`]. Server side only.
    pub async fn feed_encoded(&self, frame: Bytes) -> Result<(), Error> {
        let pending = {
            let mut conn = self.shared.conn();
            conn.send_encoded(frame)?;
            conn.handle_data_sent(Instant::now());
            conn.pending_send_bytes()
        };
        self.backpressure(pending).await
    }

    /// Sends one fragment of a message (see
    /// [`switchboard_proto::Connection::send_fragment`]) and writes it out.
    pub async fn send_fragment(
        &self,
        kind: MessageKind,
        payload: Bytes,
        fin: bool,
    ) -> Result<(), Error> {
        self.shared.conn().send_fragment(kind, payload, fin)?;
        self.shared.flush().await
    }

    /// Sends a ping.
    pub async fn ping(&self, payload: &[u8]) -> Result<(), Error> {
        self.shared.conn().ping(payload)?;
        self.shared.flush().await
    }

    /// Sends an unsolicited pong, a one-way heartbeat (RFC 6455 §5.5.3).
    pub async fn pong(&self, payload: &[u8]) -> Result<(), Error> {
        self.shared.conn().pong(payload)?;
        self.shared.flush().await
    }

    /// Starts the closing handshake: sends a close frame. The reader sees
    /// [`Event::Closed`] when the peer answers (or `close_timeout` passes).
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.shared
            .conn()
            .close(Instant::now(), CloseFrame::new(code, reason))?;
        self.shared.flush().await
    }

    /// Writes everything queued.
    pub async fn flush(&self) -> Result<(), Error> {
        self.shared.flush().await
    }

    /// Bytes queued and not yet written to the stream.
    pub fn buffered_amount(&self) -> usize {
        self.shared.conn().pending_send_bytes() + self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the connection can still send.
    pub fn is_open(&self) -> bool {
        self.shared.conn().is_open()
    }

    async fn backpressure(&self, pending: usize) -> Result<(), Error> {
        if pending + self.shared.in_flight.load(Ordering::Relaxed)
            > self.shared.max_pending_send_bytes
        {
            self.shared.flush().await
        } else {
            Ok(())
        }
    }
}
