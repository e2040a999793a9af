//! Settings of the hub.

use std::time::Duration;

use switchboard_proto::ConfigError;

use crate::history::HistoryRule;
use crate::rate::Rate;

/// What happens when a connection's outbound queue is full: the peer reads
/// more slowly than messages arrive for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumerPolicy {
    /// Close the connection with 1008 ("slow consumer"). The default: a
    /// client that silently misses messages is worse than one that
    /// reconnects and knows it did.
    Close,
    /// Drop the message for that connection and count it in `dropped`.
    Drop,
}

/// The settings of a [`crate::Hub`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubConfig {
    pub(crate) max_connections: usize,
    pub(crate) queue_len: usize,
    pub(crate) max_pending_send_bytes: usize,
    pub(crate) slow_consumer: SlowConsumerPolicy,
    pub(crate) max_rooms_per_connection: usize,
    pub(crate) max_subscriptions_per_connection: usize,
    pub(crate) max_wildcard_patterns: usize,
    pub(crate) userlist_limit: usize,
    pub(crate) userlist_interval: Duration,
    pub(crate) userlist_rate: usize,
    pub(crate) global_userlist: bool,
    pub(crate) rate: Rate,
    pub(crate) rate_per_address: Rate,
    pub(crate) max_forward_queue: usize,
    pub(crate) max_stream_size: usize,
    pub(crate) max_streams: usize,
    pub(crate) history: Vec<HistoryRule>,
    pub(crate) history_memory: usize,
    pub(crate) history_unacked: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_connections: 10_000,
            queue_len: 1024,
            max_pending_send_bytes: 4 << 20,
            slow_consumer: SlowConsumerPolicy::Close,
            max_rooms_per_connection: 100,
            max_subscriptions_per_connection: 100,
            max_wildcard_patterns: 5_000,
            userlist_limit: 500,
            userlist_interval: Duration::from_millis(50),
            userlist_rate: 4 << 20,
            global_userlist: false,
            rate: Rate {
                messages: 1000,
                bytes: 16 << 20,
            },
            rate_per_address: Rate::UNLIMITED,
            max_forward_queue: 64,
            max_stream_size: 64 << 20,
            max_streams: 64,
            history: Vec::new(),
            history_memory: 256 << 20,
            history_unacked: 1000,
        }
    }
}

impl HubConfig {
    /// The most connections in the hub at once; more upgrades are refused
    /// with 503. Counted where the upgrade is decided, so concurrent
    /// upgrades never exceed it. Default 10,000.
    pub fn max_connections(&mut self, connections: usize) -> &mut Self {
        self.max_connections = connections;
        self
    }

    /// The most bytes waiting for one connection; past it the slow-consumer
    /// policy applies (one message larger than this still goes out when
    /// nothing else waits). Default 4 MiB: a burst of large messages, but
    /// not a gigabyte behind a client that stopped reading.
    pub fn max_pending_send_bytes(&mut self, bytes: usize) -> &mut Self {
        self.max_pending_send_bytes = bytes;
        self
    }

    /// The most messages waiting for one connection; past it the slow-consumer
    /// policy applies. Default 1024: a second of a busy room, and with
    /// broadcast frames shared, little memory.
    pub fn queue_len(&mut self, messages: usize) -> &mut Self {
        self.queue_len = messages;
        self
    }

    /// What to do when a queue is full. Default [`SlowConsumerPolicy::Close`].
    pub fn slow_consumer(&mut self, policy: SlowConsumerPolicy) -> &mut Self {
        self.slow_consumer = policy;
        self
    }

    /// The most rooms one connection may be in. Default 100.
    pub fn max_rooms_per_connection(&mut self, rooms: usize) -> &mut Self {
        self.max_rooms_per_connection = rooms;
        self
    }

    /// The most address patterns one connection may subscribe to. Default 100.
    pub fn max_subscriptions_per_connection(&mut self, patterns: usize) -> &mut Self {
        self.max_subscriptions_per_connection = patterns;
        self
    }

    /// The most different wildcard segments (`sensor*`, `c?`) the hub's
    /// subscriptions may hold. Patterns spelled alike share theirs, and exact
    /// segments are free; each different wildcard segment is one linear
    /// search of a publish's address, so this bounds what one publish can
    /// cost (about 0.6 µs a segment when every one needs a full search).
    /// Past it, subscribe answers `too_many_patterns`. Default 5,000: a
    /// publish within about 3 ms of CPU.
    pub fn max_wildcard_patterns(&mut self, segments: usize) -> &mut Self {
        self.max_wildcard_patterns = segments;
        self
    }

    /// Rooms with more members than this get no automatic `userlist`
    /// (members may still ask with `users`): a full list to every member on
    /// every change grows with the square of the room. Default 500.
    pub fn userlist_limit(&mut self, members: usize) -> &mut Self {
        self.userlist_limit = members;
        self
    }

    /// Changes to a room's members within this window are sent as one
    /// `userlist`. Default 50 ms.
    pub fn userlist_interval(&mut self, interval: Duration) -> &mut Self {
        self.userlist_interval = interval;
        self
    }

    /// The most bytes of `userlist` one room's changes may send per second,
    /// counted over all its members: a list costs its size times the
    /// members it goes to, so one client renaming itself in a room of 400
    /// would otherwise buy megabytes of output per rename. Past the rate,
    /// a room's changes are held and sent together. Default 4 MiB/s: rooms
    /// of a few dozen members never reach it.
    pub fn userlist_rate(&mut self, bytes_per_second: usize) -> &mut Self {
        self.userlist_rate = bytes_per_second;
        self
    }

    /// Sends every connection the list of all connections (a `userlist`
    /// without `room`) when one connects, disconnects or renames, under the
    /// same bounds as a room's list: changes within `userlist_interval` sent
    /// together, at most `userlist_rate` bytes a second over all
    /// recipients, and no automatic list while the hub has more than
    /// `userlist_limit` connections (`users` without `room` pages through
    /// them). Default off: every change costs a list to everyone.
    pub fn global_userlist(&mut self, enabled: bool) -> &mut Self {
        self.global_userlist = enabled;
        self
    }

    /// The most one connection may send, in messages and bytes per second,
    /// with a burst of one second's worth; past it the connection is closed
    /// with 1008 ("rate limit exceeded"). Default 1,000 messages and 16 MiB
    /// a second; 0 lifts either limit.
    pub fn rate(&mut self, rate: Rate) -> &mut Self {
        self.rate = rate;
        self
    }

    /// Like [`HubConfig::rate`], for all the connections from one address
    /// together (IPv6 by /64). Default none: behind a proxy or a NAT every
    /// client has the same address.
    pub fn rate_per_address(&mut self, rate: Rate) -> &mut Self {
        self.rate_per_address = rate;
        self
    }

    /// The most events of one connection waiting for the forwarder
    /// ([`Hub::set_forwarder`](crate::Hub::set_forwarder)), the one being
    /// answered included; past it an event is refused at once with
    /// `proxy_busy`. Default 64: a client may pipeline, but one client
    /// cannot queue without bound behind a slow backend.
    pub fn max_forward_queue(&mut self, events: usize) -> &mut Self {
        self.max_forward_queue = events;
        self
    }

    /// The largest stream a client may send (`stream:start`, then one
    /// binary message relayed in fragments as they arrive); past it the
    /// connection is closed with 1009. Default 64 MiB: a stream is not
    /// held by the server (only what its slowest member has not read yet,
    /// within [`HubConfig::max_pending_send_bytes`]), so it may be larger
    /// than a message; the bound keeps one client from sending without end.
    pub fn max_stream_size(&mut self, bytes: usize) -> &mut Self {
        self.max_stream_size = bytes;
        self
    }

    /// The most streams clients send at once, over the whole hub; a
    /// `stream:start` past it is refused with `too_many_streams`. Default
    /// 64: each stream holds back its members' other messages while it
    /// lasts. 0 turns client streams off (`stream:start` is refused, and
    /// binary messages are assembled as before). One connection sends one
    /// stream at a time (RFC 6455 §5.4: its messages do not interleave).
    pub fn max_streams(&mut self, streams: usize) -> &mut Self {
        self.max_streams = streams;
        self
    }

    /// The rooms that keep history, and how much: the first rule whose
    /// rooms match a room is its rule. Default none: no room keeps any,
    /// and messages carry no offset.
    pub fn history(&mut self, rules: Vec<HistoryRule>) -> &mut Self {
        self.history = rules;
        self
    }

    /// The most bytes of history one node keeps in memory, over all rooms
    /// (a cluster keeps it in Redis instead); past it whole rooms are
    /// emptied, the least recently written first, and start a new epoch.
    /// Default 256 MiB.
    pub fn history_memory(&mut self, bytes: usize) -> &mut Self {
        self.history_memory = bytes;
        self
    }

    /// The most messages of one room a connection opened with `?acks=1`
    /// may have unacknowledged; past it the connection is closed with 4002
    /// and resumes from what it acknowledged. Default 1,000; a room's
    /// history `size` should be no smaller, so that what a connection has
    /// not acknowledged is still kept.
    pub fn history_unacked(&mut self, messages: usize) -> &mut Self {
        self.history_unacked = messages;
        self
    }

    /// Checks that the values can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.queue_len == 0 {
            return Err(ConfigError::new("queue_len must be > 0"));
        }
        if self.max_connections == 0 || self.max_pending_send_bytes == 0 {
            return Err(ConfigError::new(
                "max_connections and max_pending_send_bytes must be > 0",
            ));
        }
        if self.userlist_rate == 0 {
            return Err(ConfigError::new("userlist_rate must be > 0"));
        }
        if self.max_forward_queue == 0 {
            return Err(ConfigError::new("max_forward_queue must be > 0"));
        }
        for rule in &self.history {
            rule.validate().map_err(ConfigError::new)?;
        }
        if self.history_unacked == 0 {
            return Err(ConfigError::new("history_unacked must be > 0"));
        }
        if self.max_rooms_per_connection == 0 {
            return Err(ConfigError::new("max_rooms_per_connection must be > 0"));
        }
        Ok(())
    }
}
