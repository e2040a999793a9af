//! Counters of the hub, read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters; gauges (connections, rooms, queued) are read from the
/// registry when asked, see [`crate::Hub::stats`].
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted into the hub.
    pub connections_opened: AtomicU64,
    /// Connections that left the hub.
    pub connections_closed: AtomicU64,
    /// Messages received from clients.
    pub messages_in: AtomicU64,
    /// Payload bytes received from clients.
    pub bytes_in: AtomicU64,
    /// Messages queued to clients.
    pub messages_out: AtomicU64,
    /// Frame bytes queued to clients.
    pub bytes_out: AtomicU64,
    /// Messages dropped because a queue was full (policy `Drop`).
    pub dropped: AtomicU64,
    /// Connections closed because their queue was full (policy `Close`).
    pub slow_consumers: AtomicU64,
    /// Connections closed for sending faster than their rate limit.
    pub rate_limited: AtomicU64,
    /// `error` events sent back for bad input.
    pub errors: AtomicU64,
    /// Messages published through the HTTP API or bridges.
    pub published: AtomicU64,
    /// Events refused `proxy_busy`: the connection had
    /// `max_forward_queue` events waiting for the forwarder.
    pub forward_busy: AtomicU64,
    /// `emit` entries of forwarder replies that were not delivered
    /// (an unknown target, an invalid name or room).
    pub forward_emits_skipped: AtomicU64,
}

impl Metrics {
    /// Adds `n` to a counter: for connections the application serves
    /// itself, counted with the hub's (e.g. `rate_limited`).
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
