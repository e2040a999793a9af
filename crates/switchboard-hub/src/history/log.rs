//! A room's stored messages on a node without a cluster: the newest
//! `size`, none older than `ttl`, in offset order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// What a stored message costs beyond its JSON: its entry here and the
/// frame header its bytes share.
pub(crate) const ENTRY_OVERHEAD: usize = 48;

/// The stored messages of one room. Offsets follow each other without a
/// hole (every message of the room is stored), so the message after an
/// offset is found by subtraction.
#[derive(Debug, Default)]
pub(crate) struct Log {
    entries: VecDeque<Entry>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    offset: u64,
    at: Instant,
    json: Bytes,
}

impl Log {
    /// Stores the message numbered `offset` (one past the last), then drops
    /// what `size` and `ttl` no longer keep. Returns the change in bytes.
    pub fn push(
        &mut self,
        offset: u64,
        json: Bytes,
        now: Instant,
        size: usize,
        ttl: Duration,
    ) -> isize {
        let before = self.bytes as isize;
        debug_assert!(self.entries.back().is_none_or(|e| e.offset + 1 == offset));
        self.bytes += json.len() + ENTRY_OVERHEAD;
        self.entries.push_back(Entry {
            offset,
            at: now,
            json,
        });
        while self.entries.len() > size {
            self.pop_front();
        }
        self.expire(now, ttl);
        self.bytes as isize - before
    }

    /// Drops the messages older than `ttl`.
    pub fn expire(&mut self, now: Instant, ttl: Duration) {
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > ttl)
        {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= entry.json.len() + ENTRY_OVERHEAD;
        }
    }

    /// The offset of the oldest message kept, 0 when none is.
    pub fn oldest(&self) -> u64 {
        self.entries.front().map_or(0, |e| e.offset)
    }

    /// Up to `limit` messages after `after`, oldest first.
    pub fn after(&self, after: u64, limit: usize) -> Vec<(u64, Bytes)> {
        let Some(first) = self.entries.front().map(|e| e.offset) else {
            return Vec::new();
        };
        let skip = (after + 1).saturating_sub(first) as usize;
        self.entries
            .iter()
            .skip(skip)
            .take(limit)
            .map(|e| (e.offset, e.json.clone()))
            .collect()
    }

    /// The bytes the log holds, counted as [`ENTRY_OVERHEAD`] says.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(n: u64) -> Bytes {
        Bytes::from(format!("{{\"n\":{n}}}"))
    }

    #[test]
    fn keeps_the_newest_and_finds_by_offset() {
        let (mut log, now, ttl) = (Log::default(), Instant::now(), Duration::from_secs(60));
        for offset in 1..=10 {
            log.push(offset, json(offset), now, 4, ttl);
        }
        assert_eq!(log.oldest(), 7);
        let offsets = |v: Vec<(u64, Bytes)>| v.into_iter().map(|(o, _)| o).collect::<Vec<_>>();
        assert_eq!(offsets(log.after(0, 100)), [7, 8, 9, 10]);
        assert_eq!(offsets(log.after(8, 100)), [9, 10]);
        assert_eq!(offsets(log.after(7, 1)), [8]);
        assert!(log.after(10, 100).is_empty());
        assert_eq!(log.after(9, 1)[0].1, json(10));
        let kept: usize = (7..=10).map(|n| json(n).len() + ENTRY_OVERHEAD).sum();
        assert_eq!(log.bytes(), kept);
    }

    #[test]
    fn drops_what_is_too_old() {
        let (mut log, start, ttl) = (Log::default(), Instant::now(), Duration::from_secs(10));
        log.push(1, json(1), start, 100, ttl);
        log.push(2, json(2), start + Duration::from_secs(5), 100, ttl);
        let delta = log.push(3, json(3), start + Duration::from_secs(12), 100, ttl);
        assert_eq!(log.oldest(), 2, "the first is 12 s old");
        assert_eq!(delta, 0, "one in, one out, the same size");
        log.expire(start + Duration::from_secs(30), ttl);
        assert_eq!((log.oldest(), log.bytes()), (0, 0));
    }
}
