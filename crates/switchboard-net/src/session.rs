//! A server connection driven by one task: the socket, the protocol core
//! and the timers in one place, with an [`Outbox`] that any task may send on.
//!
//! The task that owns a [`Session`] loops on [`Session::next_event`]; that
//! one call reads and hands bytes to the core, fires its timers, answers
//! pings and closes, writes what other tasks queued on the outbox and could
//! not write themselves, and carries out [`Outbox::close`] and
//! [`Outbox::abort`]. No lock is taken on the read path; a send takes the
//! outbox's lock once.
//!
//! While more than half of the outbox's bounds are waiting to be written,
//! the session stops reading: a peer that does not read cannot make the
//! server queue replies (pongs, acknowledgements) without bound; at most
//! what one read brought in (64 KiB) is answered past that point.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::BytesMut;
use switchboard_proto::{CloseFrame, CloseInfo, Connection, Event, Message};
use tokio::time::Sleep;

use crate::error::Error;
use crate::outbox::{Cork, Outbox, Queue, Request};
use crate::read_half::ReadHalf;

/// How many reads [`Session::next_event_corked`] makes before it flushes
/// its cork: more messages share a write under load, and a busy peer cannot
/// hold its recipients' messages back for long.
pub const READS_PER_FLUSH: usize = 8;

/// Reads grow up to this size while the peer keeps the socket full.
const MAX_READ_SIZE: usize = 64 * 1024;

/// One server connection, owned by the task that drives it.
pub struct Session {
    conn: Connection,
    read: ReadHalf,
    buf: BytesMut,
    /// The smallest read; reads double from it while each one fills up,
    /// and shrink back as they come in small.
    base_read_size: usize,
    read_size: usize,
    outbox: Outbox,
    timer: Option<Pin<Box<Sleep>>>,
    /// Reads since the cork was last flushed (see [`Session::next_event_corked`]).
    reads_corked: usize,
    /// The deadline `timer` is set to; `None` once it fired.
    armed: Option<Instant>,
    /// Bytes read with the handshake wait to be handed to the core.
    primed: bool,
    /// Boxed: it is needed once, at the end.
    close_info: Option<Box<CloseInfo>>,
    /// The stream is written out and shut down: only `Err(closed)` follows.
    done: bool,
    /// When the last bytes of a finished connection stop being waited for.
    finish_by: Option<Instant>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("outbox", &self.outbox)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.read.linger();
    }
}

impl Session {
    pub(crate) fn new(
        conn: Connection,
        read: ReadHalf,
        outbox: Outbox,
        leftover: BytesMut,
        read_size: usize,
    ) -> Session {
        Session {
            conn,
            read,
            buf: leftover,
            base_read_size: read_size,
            read_size,
            outbox,
            timer: None,
            reads_corked: 0,
            armed: None,
            primed: false,
            close_info: None,
            done: false,
            finish_by: None,
        }
    }

    /// The handle other tasks send on.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Delivers messages as [`Event::Fragment`]s as their frames arrive,
    /// without assembling them, from the next message on.
    pub fn set_streaming(&mut self, streaming: bool) {
        self.conn.set_streaming(streaming);
    }

    /// Delivers binary messages as [`Event::Fragment`]s as their frames
    /// arrive, with `max_size` as their size limit in place of
    /// `max_message_size`; text messages are still assembled (see
    /// [`switchboard_proto::Connection::set_binary_streaming`]).
    pub fn set_binary_streaming(&mut self, max_size: Option<usize>) {
        self.conn.set_binary_streaming(max_size);
    }

    /// How the connection closed, once it has.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close_info.as_deref()
    }

    /// Sends a message through the core (compressed if that was agreed).
    ///
    /// It goes out when the task next waits in [`Session::next_event`] for
    /// more input: the replies to everything one read brought in leave in
    /// one write (measured: writing each reply at once is slower, in
    /// throughput and in tail latency). Frames other tasks push meanwhile
    /// may go first.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        self.conn.send_message(message)?;
        self.conn.handle_data_sent(Instant::now());
        Ok(())
    }

    /// The next event if one is already in (from the last read), without
    /// reading: a task that corks its fan-out flushes when this is `None`,
    /// before it waits in [`Session::next_event`].
    ///
    /// While more than half the outbox's bounds wait to be written, no
    /// message is handed out (but on a connection that is closing): a peer
    /// that sends requests without reading the replies is held back by its
    /// own replies, however many requests one read brought in.
    pub fn next_buffered_event(&mut self) -> Option<Event> {
        if self.conn.is_open() && self.outbox.is_backlogged() {
            return None;
        }
        let event = self.conn.poll_event()?;
        if let Event::Closed(info) = &event {
            self.close_info = Some(Box::new(info.clone()));
        }
        Some(event)
    }

    /// The next event if one can be had without waiting: already in, or
    /// in the socket now. A task that corks its fan-out reads on with this
    /// while the peer keeps sending, so that more messages share each
    /// flush, and waits in [`Session::next_event`] only after flushing.
    pub fn try_next_event(&mut self) -> Option<Result<Event, Error>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Whatever this registers is registered again by the next real poll,
        // which looks at the state again before it sleeps.
        match self.poll_next_event(&mut cx) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }

    /// The next event, for a task that fans out what it reads through
    /// `cork`: while input is at hand it reads on (at most
    /// [`READS_PER_FLUSH`] reads), so that more messages share each write,
    /// and it flushes the cork before it waits.
    pub async fn next_event_corked(&mut self, cork: &mut Cork) -> Result<Event, Error> {
        if let Some(event) = self.next_buffered_event() {
            return Ok(event);
        }
        if !cork.is_empty() && self.reads_corked < READS_PER_FLUSH {
            self.reads_corked += 1;
            if let Some(result) = self.try_next_event() {
                return result;
            }
        }
        cork.flush();
        self.reads_corked = 0;
        self.next_event().await
    }

    /// The next event: a message or fragment, a ping or pong, or the close.
    ///
    /// After [`Event::Closed`] the remaining output (the close frame) is
    /// written and the stream shut down before this returns again; every
    /// later call returns an error for which [`Error::is_closed`] holds.
    /// Cancel-safe: dropping the future loses no data.
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        poll_fn(|cx| self.poll_next_event(cx)).await
    }

    /// Polls for the next event (see [`Session::next_event`]).
    pub fn poll_next_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        if !self.primed {
            self.primed = true;
            if !self.buf.is_empty() {
                self.conn.handle_bytes(&mut self.buf, Instant::now());
            }
        }
        loop {
            if let Some(event) = self.next_buffered_event() {
                return Poll::Ready(Ok(event));
            }
            let backlogged = self.poll_output(cx);
            if self.conn.is_finished() {
                if self.poll_finish(cx).is_pending() {
                    return Poll::Pending;
                }
                self.done = true;
                return Poll::Ready(Err(Error::closed()));
            }
            if self.poll_timer(cx) {
                continue;
            }
            if !backlogged && self.poll_read(cx) {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Writes what waits, carries out close requests, and tells the core
    /// when data last went out. Returns whether the outbox is backlogged.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> bool {
        let mut queue = self.outbox.lock();
        queue.register(cx.waker());
        if let Some(request) = queue.take_request() {
            start_close(&mut self.conn, &mut queue, request);
        }
        // Queued, then written below in one vectored write.
        while let Some(chunk) = self.conn.poll_transmit() {
            queue.enqueue(chunk);
        }
        if let Some(at) = queue.take_last_data() {
            self.conn.handle_data_sent(at);
        }
        if !self.conn.is_open() {
            queue.stop_accepting();
        }
        let failure = match queue.poll_write_queued(cx) {
            Poll::Ready(Err(error)) => Some(error),
            _ => queue.take_failure(),
        };
        if let Some(error) = failure {
            tracing::debug!(%error, "write failed");
            queue.stop_accepting();
            queue.discard();
            drop(queue);
            self.conn.handle_eof();
            return true;
        }
        drop(queue);
        self.outbox.is_backlogged()
    }

    /// Writes the rest and shuts the stream down, once the core is finished;
    /// a peer that does not take the last bytes within `close_timeout` is
    /// left.
    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let mut queue = self.outbox.lock();
        while let Some(chunk) = self.conn.poll_transmit() {
            queue.enqueue(chunk);
        }
        queue.stop_accepting();
        if let Poll::Ready(Err(_)) = queue.poll_write_queued(cx) {
            queue.discard();
        }
        if queue.frames() > 0 {
            let give_up = *self
                .finish_by
                .get_or_insert_with(|| Instant::now() + self.conn.config().get_close_timeout());
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(give_up.into())));
            if self.armed != Some(give_up) {
                timer.as_mut().reset(give_up.into());
                self.armed = Some(give_up);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            queue.discard();
        }
        // The peer may be gone already; the connection is over either way.
        queue.poll_shutdown(cx).map(|_| ())
    }

    /// Fires the core's timers when their instant has come; returns whether
    /// one did.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.conn.poll_timeout() else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
        // A later deadline leaves the timer as it is: it fires early, finds
        // nothing due, and is set again then. That saves re-arming the timer
        // on every message.
        if self.armed.is_none_or(|armed| deadline < armed) {
            timer.as_mut().reset(deadline.into());
            self.armed = Some(deadline);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.armed = None;
        // Data pushed since the output was last looked at counts for the idle timer.
        if let Some(at) = self.outbox.lock().take_last_data() {
            self.conn.handle_data_sent(at);
        }
        self.conn.handle_timeout(Instant::now());
        true
    }

    /// Reads once if bytes are there; returns whether anything happened.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        let missing = self.conn.frame_in_progress().saturating_sub(self.buf.len());
        // A large frame under way is read in as few reads as possible, but
        // the buffer grows at most by what it holds already, so a peer that
        // announces a huge frame and sends nothing gets no large allocation.
        let size = self.read_size.max(missing.min(self.buf.len()));
        match self.read.poll_read_into(cx, &mut self.buf, size) {
            Poll::Pending => false,
            Poll::Ready(Ok(0)) => {
                self.conn.handle_eof();
                true
            }
            Poll::Ready(Ok(read)) => {
                // Reads follow what the socket holds: twice as large after a
                // full one, half after one a quarter full. (The buffer
                // itself is given back whenever the socket runs dry.)
                if read >= size {
                    self.read_size = (self.read_size * 2).min(MAX_READ_SIZE);
                } else if read < size / 4 {
                    self.read_size = (self.read_size / 2).max(self.base_read_size);
                }
                self.conn.handle_bytes(&mut self.buf, Instant::now());
                true
            }
            Poll::Ready(Err(error)) => {
                tracing::debug!(%error, "read failed");
                self.conn.handle_eof();
                true
            }
        }
    }
}

/// Carries out [`Outbox::close`] or [`Outbox::abort`]: the close frame goes
/// after what is queued, or, for an abort, in place of it.
fn start_close(conn: &mut Connection, queue: &mut Queue, request: Request) {
    let (code, reason) = match request {
        Request::Close(code, reason) => (code, reason),
        Request::Abort(code, reason) => {
            queue.discard();
            (code, reason)
        }
    };
    if conn.is_open() {
        let _ = conn.close(Instant::now(), CloseFrame::new(code, &reason));
    }
}
