//! One connection's outgoing bytes, shared by every task that sends to it.
//!
//! An [`Outbox`] is the write side of a connection driven by a
//! [`Session`](crate::Session). Any task may [`Outbox::push`] a frame encoded
//! beforehand (a broadcast shares one frame among all its recipients). When
//! nothing is waiting, the pushing task writes the frame to the socket itself,
//! at once, without waking the connection's task; only what the socket cannot
//! take now is queued, and the session's task is woken to write it when the
//! socket becomes writable. A frame is queued at most once, and a connection
//! that keeps up costs its senders one lock and one write each.
//!
//! The queue is bounded by frames and by bytes; a push past either bound is
//! refused with [`PushError::Full`] and the caller applies its policy (drop
//! the message, or [`Outbox::abort`] the connection).
//!
//! # Stream lanes
//!
//! A message sent in fragments as its data arrives (a stream relayed to
//! many connections) must not have another data message between its
//! fragments (RFC 6455 §5.4; control frames may come between, and the
//! session's pings, pongs and close do). [`Outbox::open_lane`] gives the
//! stream a [`Lane`]: while it is open, frames pushed on the outbox wait
//! behind it, under the same bounds, and go out in order when it ends.
//! One lane at a time per connection. When the bounds are reached (by the
//! stream's frames, or by what waits behind a stream that stalls), the
//! lane is cut: its message is ended with an empty final fragment, the
//! notice given at its opening follows, then what waited.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use switchboard_proto::budget::Holding;
use switchboard_proto::{CloseCode, MemoryBudget};
use tokio::io::AsyncWrite;

use crate::chunks;

/// The write side of a stream.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Why a frame was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError {
    /// The queue is at one of its bounds; the connection is not keeping up.
    Full {
        /// Frames waiting.
        frames: usize,
        /// Bytes waiting.
        bytes: usize,
    },
    /// The connection is closing or closed; nothing more is sent on it.
    Closed,
    /// The stream lane was cut (its bounds were reached, see [`Lane`]):
    /// nothing more of the stream is sent on this connection.
    Cut,
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Full { frames, bytes } => {
                write!(
                    f,
                    "outbound queue full: {frames} frames, {bytes} bytes waiting"
                )
            }
            PushError::Closed => f.write_str("connection closed"),
            PushError::Cut => f.write_str("the stream was cut for this connection"),
        }
    }
}

impl std::error::Error for PushError {}

/// What the session's task is asked to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Close after the frames already queued.
    Close(CloseCode, String),
    /// Close now: drop what is queued (but a frame already half written).
    Abort(CloseCode, String),
}

/// A handle for sending on one connection. Cheap to clone; every clone
/// sends on the same connection, in the order the pushes happen.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Outgoing>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.lock();
        f.debug_struct("Outbox")
            .field("frames", &queue.chunks.len())
            .field("bytes", &queue.bytes)
            .finish()
    }
}

struct Outgoing {
    queue: Mutex<Queue>,
    /// See `Queue::backlogged`.
    backlogged: Arc<AtomicBool>,
    max_frames: usize,
    max_bytes: usize,
}

/// Everything behind the outbox's lock.
pub(crate) struct Queue {
    io: BoxWrite,
    /// Bytes waiting, in order; the front one may be partly written.
    chunks: VecDeque<Bytes>,
    bytes: usize,
    /// The front chunk is partly written: it must go out whole, even on abort.
    front_started: bool,
    /// The session's task, to wake when it has work the pushers cannot do.
    task: Option<Waker>,
    /// When the latest data frame was pushed (for the idle timer).
    last_data: Option<Instant>,
    request: Option<Request>,
    /// Whether data frames are still taken.
    accepting: bool,
    /// The stream failed on write; the session ends.
    failed: Option<io::Error>,
    /// A write went out that the stream may still buffer (TLS): flush it.
    unflushed: bool,
    shut_down: bool,
    /// What the queue holds of the budget shared with other connections.
    held: Holding,
    /// Half the bounds (frames, bytes), and whether the queue is past
    /// either: kept up to date under the lock by every change of the
    /// queue, so that the session can look without taking the lock once
    /// per message.
    half: (usize, usize),
    /// The level last published to `backlogged`: the shared flag is
    /// written only when it changes, as a store to its line on every push
    /// made each push of a fan-out wait for one more cache miss.
    over_half: bool,
    backlogged: Arc<AtomicBool>,
    /// Stream lanes, from the first one opened on: boxed, as most
    /// connections never open one and a queue's size is an idle cost.
    lanes: Option<Box<Lanes>>,
}

/// A connection's stream lanes.
#[derive(Default)]
struct Lanes {
    /// The lane open now, if any.
    open: Option<LaneState>,
    /// Frames pushed while the lane is open, sent when it ends.
    behind: VecDeque<Bytes>,
    behind_bytes: usize,
    /// Lanes opened so far: a lane's id, so that a cut one knows it.
    opened: u64,
}

/// The stream lane open on a connection.
struct LaneState {
    id: u64,
    /// A fragmented message is under way: a cut must end it.
    in_message: bool,
    /// What follows a cut (the application's notice).
    cut_notice: Bytes,
}

impl Outbox {
    pub(crate) fn new(
        io: BoxWrite,
        max_frames: usize,
        max_bytes: usize,
        budget: Option<MemoryBudget>,
    ) -> Outbox {
        let (max_frames, max_bytes) = (max_frames.max(1), max_bytes.max(1));
        let backlogged = Arc::new(AtomicBool::new(false));
        Outbox {
            shared: Arc::new(Outgoing {
                backlogged: Arc::clone(&backlogged),
                queue: Mutex::new(Queue {
                    io,
                    chunks: VecDeque::new(),
                    bytes: 0,
                    front_started: false,
                    task: None,
                    last_data: None,
                    request: None,
                    accepting: true,
                    failed: None,
                    unflushed: false,
                    shut_down: false,
                    held: Holding::new(budget.as_ref()),
                    half: (max_frames / 2, max_bytes / 2),
                    over_half: false,
                    backlogged,
                    lanes: None,
                }),
                max_frames,
                max_bytes,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves at worst a half-written
        // queue on a connection that is then closed; keep going.
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether more than half the bounds wait to be written. Read without
    /// the lock: it may lag a change another task is making right now,
    /// which the session sees on its next look.
    pub(crate) fn is_backlogged(&self) -> bool {
        self.shared.backlogged.load(Ordering::Acquire)
    }

    /// Sends a whole frame encoded beforehand (see
    /// [`switchboard_proto::frame::encode_server_frame`]), as a data message
    /// sent at `now` (the idle timer counts from it).
    ///
    /// Written at once if nothing is waiting and the socket takes it; queued
    /// otherwise. Refused when the queue is at its bounds (a frame larger
    /// than the byte bound is still taken when nothing waits) or the
    /// connection is closing.
    ///
    /// While a [`Lane`] is open, the frame waits behind it.
    pub fn push(&self, frame: Bytes, now: Instant) -> Result<(), PushError> {
        let mut queue = self.lock();
        let Some(frame) = self.hold_behind_lane(&mut queue, frame, now)? else {
            return Ok(());
        };
        self.check_room(&mut queue, frame.len())?;
        queue.last_data = Some(now);
        queue.send(frame);
        Ok(())
    }

    /// Like [`Outbox::push`], but leaves the write to `cork`'s next flush:
    /// frames pushed to the same connection within one batch go out in one
    /// write.
    pub fn push_corked(
        &self,
        frame: Bytes,
        now: Instant,
        cork: &mut Cork,
    ) -> Result<(), PushError> {
        let mut queue = self.lock();
        let Some(frame) = self.hold_behind_lane(&mut queue, frame, now)? else {
            return Ok(());
        };
        self.check_room(&mut queue, frame.len())?;
        queue.last_data = Some(now);
        if queue.chunks.is_empty() {
            // Not corked yet (a non-empty queue is already someone's to write).
            cork.held.push(self.clone());
        }
        queue.enqueue(frame);
        Ok(())
    }

    /// Checks the bounds before a push of `len` bytes, and takes what the
    /// push may hold of the shared budget (a push the socket takes at once
    /// gives it back as it is written).
    fn check_room(&self, queue: &mut Queue, len: usize) -> Result<(), PushError> {
        if !queue.accepting || queue.failed.is_some() {
            return Err(PushError::Closed);
        }
        let bytes = queue.bytes + queue.behind_bytes() + len;
        if !queue.chunks.is_empty()
            && (queue.chunks.len() + queue.behind_frames() >= self.shared.max_frames
                || bytes > self.shared.max_bytes
                || !queue.held.grow_to(bytes))
        {
            return Err(PushError::Full {
                frames: queue.chunks.len(),
                bytes: queue.bytes,
            });
        }
        Ok(())
    }

    /// Keeps `frame` behind the open lane, if there is one and the bounds
    /// allow; past them, cuts the lane (and gives the frame back to be
    /// pushed as usual). `None` when the frame was kept.
    fn hold_behind_lane(
        &self,
        queue: &mut Queue,
        frame: Bytes,
        now: Instant,
    ) -> Result<Option<Bytes>, PushError> {
        if queue.open_lane().is_none() {
            return Ok(Some(frame));
        }
        if !queue.accepting || queue.failed.is_some() {
            return Err(PushError::Closed);
        }
        let frames = queue.chunks.len() + queue.behind_frames();
        let bytes = queue.bytes + queue.behind_bytes() + frame.len();
        if frames < self.shared.max_frames
            && bytes <= self.shared.max_bytes
            && queue.held.grow_to(bytes)
        {
            queue.last_data = Some(now);
            if let Some(lanes) = queue.lanes.as_mut() {
                lanes.behind_bytes += frame.len();
                lanes.behind.push_back(frame);
            }
            return Ok(None);
        }
        queue.cut_lane();
        Ok(Some(frame))
    }

    /// Opens a stream lane on this connection: until the [`Lane`] ends,
    /// its frames go out and other pushes wait behind it (see the module
    /// documentation). `cut_notice` is the frame sent if the lane is cut
    /// (after an empty final fragment, when a message was under way).
    /// `None` when a lane is already open or the connection is closing.
    pub fn open_lane(&self, cut_notice: Bytes) -> Option<Lane> {
        let mut queue = self.lock();
        if queue.open_lane().is_some() || !queue.accepting || queue.failed.is_some() {
            return None;
        }
        let lanes = queue.lanes.get_or_insert_default();
        lanes.opened += 1;
        let id = lanes.opened;
        lanes.open = Some(LaneState {
            id,
            in_message: false,
            cut_notice,
        });
        Some(Lane {
            outbox: self.clone(),
            id,
            done: false,
        })
    }

    /// Closes the connection after the frames already queued: the session
    /// sends a close frame and waits for the peer's (up to `close_timeout`).
    /// Nothing pushed after this is sent.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.request(Request::Close(code, reason.to_owned()));
    }

    /// Closes the connection now, dropping what is queued (a frame already
    /// partly written is finished first, so the stream stays well-formed).
    /// For a peer that does not read: its close frame is tried, then the
    /// close timeout ends the connection.
    pub fn abort(&self, code: CloseCode, reason: &str) {
        self.request(Request::Abort(code, reason.to_owned()));
    }

    fn request(&self, request: Request) {
        let mut queue = self.lock();
        if !queue.accepting {
            return;
        }
        // An abort overrides a pending close; a close never overrides an abort.
        if !matches!(queue.request, Some(Request::Abort(..))) {
            queue.request = Some(request);
        }
        queue.accepting = false;
        queue.wake_task();
    }

    /// Frames waiting to be written (behind a lane too).
    pub fn queued_frames(&self) -> usize {
        let queue = self.lock();
        queue.chunks.len() + queue.behind_frames()
    }

    /// Bytes waiting to be written, behind a lane too (the browser's
    /// `bufferedAmount`).
    pub fn queued_bytes(&self) -> usize {
        let queue = self.lock();
        queue.bytes + queue.behind_bytes()
    }

    /// Whether frames are still taken (the connection is not closing).
    pub fn is_open(&self) -> bool {
        let queue = self.lock();
        queue.accepting && queue.failed.is_none()
    }
}

/// A stream's place on one connection ([`Outbox::open_lane`]): its frames
/// go out in order, with no other data frame between them; what is pushed
/// on the outbox meanwhile waits behind it. Dropping a lane that was not
/// [finished](Lane::finish) cuts it.
pub struct Lane {
    outbox: Outbox,
    id: u64,
    done: bool,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane").field("id", &self.id).finish()
    }
}

/// An empty final continuation frame: ends a fragmented message that is cut.
const END_OF_MESSAGE: &[u8] = &[0x80, 0x00];

impl Lane {
    /// Sends a frame of the stream (a fragment, or a whole message), as
    /// data sent at `now`; `fin` says whether it ends its message. Past
    /// the outbox's bounds the lane is cut ([`PushError::Full`]); once cut,
    /// [`PushError::Cut`].
    pub fn send(&self, frame: Bytes, fin: bool, now: Instant) -> Result<(), PushError> {
        let mut queue = self.outbox.lock();
        if !queue.is_lane(self.id) {
            return Err(PushError::Cut);
        }
        if let Err(error) = self.outbox.check_room(&mut queue, frame.len()) {
            if matches!(error, PushError::Full { .. }) {
                queue.cut_lane();
            }
            return Err(error);
        }
        queue.last_data = Some(now);
        queue.send(frame);
        if let Some(lane) = queue.lanes.as_mut().and_then(|lanes| lanes.open.as_mut()) {
            lane.in_message = !fin;
        }
        Ok(())
    }

    /// Whether the lane is still open (not cut, the connection not closing).
    pub fn is_open(&self) -> bool {
        let queue = self.outbox.lock();
        queue.is_lane(self.id) && queue.accepting && queue.failed.is_none()
    }

    /// Sends the stream's last frame (whatever the bounds: it lets what
    /// waits go) and ends the lane; the frames that waited behind it follow.
    pub fn finish(mut self, last: Bytes, now: Instant) -> Result<(), PushError> {
        self.done = true;
        let mut queue = self.outbox.lock();
        if !queue.is_lane(self.id) {
            return Err(PushError::Cut);
        }
        let open = queue.accepting && queue.failed.is_none();
        if queue.open_lane().is_some_and(|lane| lane.in_message) {
            queue.send(Bytes::from_static(END_OF_MESSAGE));
        }
        if open {
            queue.last_data = Some(now);
            queue.send(last);
        }
        queue.take_lane();
        queue.release_behind();
        if open {
            Ok(())
        } else {
            Err(PushError::Closed)
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut queue = self.outbox.lock();
        if queue.is_lane(self.id) {
            queue.cut_lane();
        }
    }
}

/// Frames pushed within one batch (the messages one read brought in, fanned
/// out), written when the batch ends: one write per connection per batch
/// instead of one per frame. Dropping a cork flushes it.
#[derive(Default)]
pub struct Cork {
    held: Vec<Outbox>,
}

impl std::fmt::Debug for Cork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cork")
            .field("held", &self.held.len())
            .finish()
    }
}

impl Cork {
    /// Whether no write waits for this cork.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Writes what was pushed through this cork, as far as each socket takes
    /// it now; the rest is left to each connection's task.
    pub fn flush(&mut self) {
        for outbox in self.held.drain(..) {
            outbox.lock().write_now();
        }
    }
}

impl Drop for Cork {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Polls `poll` once, with a throwaway waker, outside the running task's
/// cooperative budget. The writes made here are for other connections: a
/// fan-out writes to many sockets in one poll of the sender's task, and
/// under the budget tokio answered `Pending` to every write past its 128th
/// without trying it, so that each of those recipients' tasks was woken to
/// write instead (0.87 wakes per delivery were measured at 1,000
/// subscribers and 100 messages a second).
fn poll_outside_budget<T>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
    let once = tokio::task::unconstrained(std::future::poll_fn(|cx| poll(cx)));
    std::pin::pin!(once).poll(&mut Context::from_waker(Waker::noop()))
}

impl Queue {
    fn is_lane(&self, id: u64) -> bool {
        self.open_lane().is_some_and(|lane| lane.id == id)
    }

    fn open_lane(&self) -> Option<&LaneState> {
        self.lanes.as_ref().and_then(|lanes| lanes.open.as_ref())
    }

    fn take_lane(&mut self) -> Option<LaneState> {
        self.lanes.as_mut().and_then(|lanes| lanes.open.take())
    }

    /// Frames waiting behind a lane.
    fn behind_frames(&self) -> usize {
        self.lanes.as_ref().map_or(0, |lanes| lanes.behind.len())
    }

    /// Bytes waiting behind a lane.
    fn behind_bytes(&self) -> usize {
        self.lanes.as_ref().map_or(0, |lanes| lanes.behind_bytes)
    }

    /// Cuts the open lane: ends its message, sends its notice, and lets
    /// what waited behind it go.
    fn cut_lane(&mut self) {
        if let Some(lane) = self.take_lane() {
            if self.accepting && self.failed.is_none() {
                if lane.in_message {
                    self.send(Bytes::from_static(END_OF_MESSAGE));
                }
                self.send(lane.cut_notice);
            }
        }
        self.release_behind();
    }

    /// Sends what waited behind a lane that ended (unless the connection
    /// is closing: then it is dropped, as what a close leaves queued is).
    fn release_behind(&mut self) {
        let behind = match self.lanes.as_mut() {
            Some(lanes) => {
                lanes.behind_bytes = 0;
                std::mem::take(&mut lanes.behind)
            }
            None => VecDeque::new(),
        };
        if self.accepting && self.failed.is_none() {
            for frame in behind {
                self.send(frame);
            }
        }
        self.held.shrink_to(self.bytes);
    }

    /// Writes what waits without waiting for the socket, and wakes the
    /// session's task for whatever is left: it registers its own interest in
    /// the socket, which a throwaway waker here has just replaced.
    fn write_now(&mut self) {
        if self.chunks.is_empty() {
            return;
        }
        match poll_outside_budget(|cx| self.poll_write_queued(cx)) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => {
                self.failed = Some(error);
                self.wake_task();
            }
            Poll::Pending => self.wake_task(),
        }
    }

    /// Writes `chunk` now if nothing waits before it, and queues what the
    /// socket does not take (waking the session's task to finish it).
    pub(crate) fn send(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if !self.chunks.is_empty() || self.failed.is_some() {
            // The session's task is already waiting for the socket.
            self.enqueue(chunk);
            return;
        }
        // Nobody waits on this socket's writability now (the queue is
        // empty), so a throwaway waker registers nothing anyone needs.
        match poll_outside_budget(|cx| Pin::new(&mut self.io).poll_write(cx, &chunk)) {
            Poll::Ready(Ok(written)) if written == chunk.len() => {
                self.unflushed = true;
                if poll_outside_budget(|cx| Pin::new(&mut self.io).poll_flush(cx)).is_ready() {
                    self.unflushed = false;
                } else {
                    self.wake_task();
                }
            }
            Poll::Ready(Ok(written)) => {
                self.unflushed = true;
                self.front_started = written > 0;
                self.enqueue(chunk.slice(written..));
                self.wake_task();
            }
            Poll::Pending => {
                self.enqueue(chunk);
                self.wake_task();
            }
            Poll::Ready(Err(error)) => {
                self.failed = Some(error);
                self.wake_task();
            }
        }
    }

    /// Queues `chunk` behind what waits, without writing (the session's
    /// task writes the queue itself right after).
    pub(crate) fn enqueue(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.bytes += chunk.len();
        self.chunks.push_back(chunk);
        self.note_level();
    }

    /// Updates `backlogged` after the queue changed.
    fn note_level(&mut self) {
        let over = self.chunks.len() > self.half.0 || self.bytes > self.half.1;
        if over != self.over_half {
            self.over_half = over;
            self.backlogged.store(over, Ordering::Release);
        }
    }

    fn wake_task(&mut self) {
        if let Some(task) = self.task.take() {
            task.wake();
        }
    }

    /// Remembers the session's task, to wake it when there is work for it.
    pub(crate) fn register(&mut self, waker: &Waker) {
        match &self.task {
            Some(task) if task.will_wake(waker) => {}
            _ => self.task = Some(waker.clone()),
        }
    }

    pub(crate) fn take_request(&mut self) -> Option<Request> {
        self.request.take()
    }

    pub(crate) fn take_last_data(&mut self) -> Option<Instant> {
        self.last_data.take()
    }

    pub(crate) fn take_failure(&mut self) -> Option<io::Error> {
        self.failed.take()
    }

    /// No more data frames are taken (the connection is closing).
    pub(crate) fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Drops every queued chunk but a partly written front one.
    pub(crate) fn discard(&mut self) {
        if let Some(lanes) = self.lanes.as_mut() {
            lanes.open = None;
            lanes.behind.clear();
            lanes.behind_bytes = 0;
        }
        let keep = if self.front_started {
            self.chunks.pop_front()
        } else {
            None
        };
        self.chunks.clear();
        self.bytes = 0;
        self.held.shrink_to(0);
        if let Some(front) = keep {
            self.enqueue(front);
        }
        self.note_level();
    }

    pub(crate) fn frames(&self) -> usize {
        self.chunks.len()
    }

    /// Writes what is queued until done or the socket is full (the task's
    /// waker is then registered with the socket), and flushes.
    pub(crate) fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.chunks.is_empty() {
            let written = match chunks::poll_write_front(Pin::new(&mut self.io), cx, &self.chunks) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(written)) => written,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            };
            self.unflushed = true;
            self.advance(written);
        }
        if self.unflushed {
            std::task::ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, written: usize) {
        self.bytes -= written;
        self.held.shrink_to(self.bytes + self.behind_bytes());
        self.front_started = chunks::advance(&mut self.chunks, written);
        self.note_level();
    }

    /// Shuts the write side down once (the connection is over).
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shut_down {
            return Poll::Ready(Ok(()));
        }
        let result = std::task::ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        self.shut_down = true;
        self.accepting = false;
        Poll::Ready(result)
    }
}
