//! The bounded queue of frames waiting for one connection, and the task that
//! writes it to the socket.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use switchboard_net::{CloseCode, Writer};
use tokio::sync::Notify;

use crate::config::SlowConsumerPolicy;
use crate::metrics::Metrics;

/// What the writer task is asked to do.
pub(crate) enum Out {
    /// Write an encoded frame (possibly shared with other connections).
    Frame(Bytes),
    /// Close the connection after what is queued before it.
    Close(CloseCode, String),
}

/// Ends a connection at once, bypassing a full queue.
#[derive(Default)]
pub(crate) struct Kill {
    fired: AtomicBool,
    why: Mutex<Option<(CloseCode, String)>>,
    notify: Notify,
}

impl Kill {
    fn fire(&self, code: CloseCode, reason: &str) {
        if !self.fired.swap(true, Ordering::AcqRel) {
            *self.why.lock().unwrap_or_else(|p| p.into_inner()) = Some((code, reason.to_owned()));
            self.notify.notify_one();
        }
    }

    async fn fired(&self) -> (CloseCode, String) {
        self.notify.notified().await;
        self.why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or((CloseCode::POLICY_VIOLATION, String::new()))
    }
}

/// The queue itself: a deque that allocates nothing while empty (an idle
/// connection holds no slots), a count readable without the lock, and a
/// count of senders so the writer learns when the last one is gone.
struct Queue {
    items: Mutex<VecDeque<Out>>,
    len: AtomicUsize,
    capacity: usize,
    senders: AtomicUsize,
    wake: Notify,
}

/// Keep at most this many slots allocated once a burst has drained.
const RETAINED_SLOTS: usize = 16;

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Out>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends unless full; returns the item back when it is.
    fn try_push(&self, item: Out) -> Result<(), Out> {
        {
            let mut items = self.lock();
            if items.len() >= self.capacity {
                return Err(item);
            }
            items.push_back(item);
            self.len.store(items.len(), Ordering::Release);
        }
        // One consumer: a stored permit wakes it even if it is not waiting yet.
        self.wake.notify_one();
        Ok(())
    }

    fn try_pop(&self) -> Option<Out> {
        let mut items = self.lock();
        let item = items.pop_front();
        if items.is_empty() && items.capacity() > RETAINED_SLOTS {
            items.shrink_to(RETAINED_SLOTS);
        }
        self.len.store(items.len(), Ordering::Release);
        item
    }
}

/// The sending side of a connection's queue.
pub(crate) struct Outbox {
    queue: Arc<Queue>,
    kill: Arc<Kill>,
    policy: SlowConsumerPolicy,
    metrics: Arc<Metrics>,
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.queue.senders.fetch_add(1, Ordering::AcqRel);
        Outbox {
            queue: Arc::clone(&self.queue),
            kill: Arc::clone(&self.kill),
            policy: self.policy,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.queue.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.queue.wake.notify_one();
        }
    }
}

/// The writer task's side of a connection's queue.
pub(crate) struct Inbox {
    queue: Arc<Queue>,
}

impl Inbox {
    /// The next item; `None` once every sender is gone and the queue is empty.
    async fn recv(&mut self) -> Option<Out> {
        loop {
            if let Some(item) = self.queue.try_pop() {
                return Some(item);
            }
            if self.queue.senders.load(Ordering::Acquire) == 0 {
                return None;
            }
            self.queue.wake.notified().await;
        }
    }

    fn try_recv(&mut self) -> Option<Out> {
        self.queue.try_pop()
    }
}

impl Outbox {
    pub fn new(
        queue_len: usize,
        policy: SlowConsumerPolicy,
        metrics: Arc<Metrics>,
    ) -> (Outbox, Inbox, Arc<Kill>) {
        let queue = Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            capacity: queue_len,
            senders: AtomicUsize::new(1),
            wake: Notify::new(),
        });
        let kill = Arc::new(Kill::default());
        let outbox = Outbox {
            queue: Arc::clone(&queue),
            kill: Arc::clone(&kill),
            policy,
            metrics,
        };
        (outbox, Inbox { queue }, kill)
    }

    /// Queues a frame without waiting. Returns whether it was queued; a full
    /// queue applies the slow-consumer policy.
    pub fn push(&self, frame: Bytes) -> bool {
        let len = frame.len() as u64;
        match self.queue.try_push(Out::Frame(frame)) {
            Ok(()) => {
                Metrics::add(&self.metrics.messages_out, 1);
                Metrics::add(&self.metrics.bytes_out, len);
                true
            }
            Err(_) => {
                match self.policy {
                    SlowConsumerPolicy::Drop => Metrics::add(&self.metrics.dropped, 1),
                    SlowConsumerPolicy::Close => {
                        if !self.kill.fired.load(Ordering::Acquire) {
                            Metrics::add(&self.metrics.slow_consumers, 1);
                        }
                        let reason =
                            format!("slow consumer: {} messages queued", self.queue.capacity);
                        self.kill.fire(CloseCode::POLICY_VIOLATION, &reason);
                    }
                }
                false
            }
        }
    }

    /// Queues a close after the frames already queued; if the queue is full,
    /// closes at once.
    pub fn close(&self, code: CloseCode, reason: &str) {
        if self
            .queue
            .try_push(Out::Close(code, reason.to_owned()))
            .is_err()
        {
            self.kill.fire(code, reason);
        }
    }

    /// Frames waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len.load(Ordering::Acquire)
    }
}

/// Writes queued frames to the socket until the queue closes, a close is
/// asked for, the kill switch fires, or the socket fails.
pub(crate) async fn write_loop(writer: Writer, mut rx: Inbox, kill: Arc<Kill>) {
    loop {
        let item = tokio::select! {
            biased;
            (code, reason) = kill.fired() => return abort(&writer, code, &reason).await,
            item = rx.recv() => item,
        };
        let Some(item) = item else {
            return;
        };
        let result = tokio::select! {
            biased;
            (code, reason) = kill.fired() => return abort(&writer, code, &reason).await,
            result = write_batch(&writer, item, &mut rx) => result,
        };
        match result {
            Ok(true) => continue,
            Ok(false) | Err(_) => return,
        }
    }
}

/// Writes one item and whatever else is ready, then flushes once.
/// Returns `false` once the connection is closing.
async fn write_batch(
    writer: &Writer,
    first: Out,
    rx: &mut Inbox,
) -> Result<bool, switchboard_net::Error> {
    let mut item = first;
    loop {
        match item {
            Out::Frame(frame) => writer.feed_encoded(frame).await?,
            Out::Close(code, reason) => {
                writer.close(code, &reason).await?;
                return Ok(false);
            }
        }
        match rx.try_recv() {
            Some(next) => item = next,
            None => break,
        }
    }
    writer.flush().await?;
    Ok(true)
}

/// Closes a connection whose queue overflowed: the close frame is tried
/// briefly (the peer is, after all, not reading), then the socket is dropped.
async fn abort(writer: &Writer, code: CloseCode, reason: &str) {
    let close = writer.close(code, reason);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), close).await;
}
