//! The settings of the cluster link: [`ClusterSettings`] and [`Channels`].

use std::time::Duration;

/// How messages for several nodes travel (`--cluster-channels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// One `PUBLISH` to the inbox of each node with recipients (the default).
    Nodes,
    /// One `PUBLISH` to a channel every node reads (direct messages still
    /// go to the target's inbox).
    Shared,
}

impl Channels {
    pub fn parse(text: &str) -> Option<Channels> {
        match text {
            "nodes" => Some(Channels::Nodes),
            "shared" => Some(Channels::Shared),
            _ => None,
        }
    }
}

/// The settings of the cluster link.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `redis://[user:password@]host[:port][/db]`.
    pub url: String,
    /// Prefix of every key and channel; nodes with the same prefix (and
    /// Redis) form one cluster.
    pub prefix: String,
    /// A node whose heartbeat is older than this is dead.
    pub ttl: Duration,
    /// How often a node refreshes its heartbeat and checks the others.
    pub heartbeat: Duration,
    pub channels: Channels,
}

impl ClusterSettings {
    /// The TTL of a node's keys, in milliseconds (at least 1).
    pub fn ttl_millis(&self) -> u64 {
        self.ttl.as_millis().max(1) as u64
    }
}
