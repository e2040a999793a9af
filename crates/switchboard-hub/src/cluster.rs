//! Clustering: what the hub hands to other nodes, and what it takes from them.
//!
//! This module holds the types an adapter sees; the hub's side of them is
//! in `clustered` (methods of [`crate::Hub`]), and its view of the other
//! nodes' connections in `remote`.
//!
//! The hub does not talk to other nodes itself. It calls a
//! [`ClusterAdapter`] (Redis, in `switchboard serve`), set once with
//! [`Hub::set_cluster`](crate::Hub::set_cluster); the adapter hands back what other nodes sent through
//! [`Hub::deliver_remote`](crate::Hub::deliver_remote) and the `remote_*` methods. Without an adapter
//! none of this costs anything: every path checks for it once and goes on.
//!
//! # Messages
//!
//! Every room, direct, broadcast and address message routed on this node
//! (from a client, the HTTP API or a bridge) that has recipients on other
//! nodes is given to [`ClusterAdapter::send`] once, with the nodes it is for
//! and its JSON encoding: the very bytes this node's JSON clients get. The
//! receiving node frames that payload for its clients ([`Hub::deliver_remote`](crate::Hub::deliver_remote)):
//! JSON frames carry it as it is, MessagePack ones re-encode it once per
//! message from the parsed JSON. So a message is encoded once per hop, never
//! once per recipient.
//!
//! Which nodes have recipients is read from this node's view of presence
//! (below): the nodes with members of the room, the node of the direct
//! message's target, every node with a connection for a broadcast, every
//! known node for an address message (subscriptions are not shared).
//!
//! # Presence
//!
//! Each change of a local connection (connect, join, leave, rename,
//! disconnect) is given to [`ClusterAdapter::presence`] as the connection's
//! whole state ([`User`]) or its removal. The adapter keeps the other nodes'
//! connections in this hub's cache (`remote_update`, `remote_remove`,
//! `remote_sync`, `remote_drop`), from which user lists, `users`, room sizes
//! and the routing above are computed synchronously.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::history::{Append, HistoryRule, HistoryUnavailable, PageFuture};
use crate::id::ConnId;

/// The id of a node, shared by every entry that names it.
pub type NodeId = Arc<str>;

/// Where a message goes on the nodes that receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// The members of a room, but `except` (the sender, with `"echo":false`).
    Room {
        /// The room.
        room: &'a str,
        /// A connection to leave out.
        except: Option<&'a str>,
    },
    /// One connection.
    Direct {
        /// Its id.
        to: &'a str,
    },
    /// Every connection, but `except`.
    Everyone {
        /// A connection to leave out.
        except: Option<&'a str>,
    },
    /// The subscribers of patterns matching an address.
    Address {
        /// The address.
        path: &'a str,
    },
}

/// A message routed on this node, for other nodes.
#[derive(Debug)]
pub struct ClusterMessage<'a> {
    /// Where it goes on the receiving nodes.
    pub route: Route<'a>,
    /// The message as clients receive it, in JSON.
    pub payload: &'a Bytes,
    /// The nodes with recipients for it (never this one), in no order.
    pub nodes: &'a [NodeId],
}

/// One connection's entry in the cluster's user lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The connection id.
    pub id: ConnId,
    /// Its name, if it chose one.
    pub name: Option<String>,
    /// The rooms it is in.
    pub rooms: BTreeSet<String>,
}

impl User {
    pub(crate) fn entry(&self) -> Value {
        json!({ "id": self.id.as_str(), "name": self.name })
    }
}

/// A change of a local connection, for the other nodes' user lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// The connection's state after it connected, joined, left or renamed.
    Update(User),
    /// The connection left the hub.
    Remove(ConnId),
}

/// Carries messages and presence between this hub and the other nodes.
///
/// The hub calls it on the paths of its clients, so both methods must
/// return at once: queue, never wait for the network.
pub trait ClusterAdapter: Send + Sync + 'static {
    /// Sends a message to `message.nodes`. Returns whether it was taken
    /// (false when the cluster link is down or its queue is full: the
    /// message is then lost for the other nodes: delivery across nodes is at most once).
    fn send(&self, message: &ClusterMessage<'_>) -> bool;

    /// A local connection's presence changed; changes of one connection
    /// arrive in order.
    fn presence(&self, change: PresenceChange);

    /// Numbers and stores a message in its room's history, then sends it
    /// to every node, this one included, which delivers it with
    /// [`Hub::deliver_history`](crate::Hub::deliver_history): in one
    /// order, the offsets', on every node. Returns at once (queues, in
    /// order with `send` and `presence`); gives the append back when it
    /// cannot be taken. The default keeps no history.
    fn history_append(&self, append: Box<Append>) -> Result<(), Box<Append>> {
        Err(append)
    }

    /// Reads up to `limit` messages of a room's history after offset
    /// `after`. The default keeps no history.
    fn history_read(&self, room: &str, rule: &HistoryRule, after: u64, limit: usize) -> PageFuture {
        let _ = (room, rule, after, limit);
        Box::pin(std::future::ready(Err(HistoryUnavailable(
            "this cluster keeps no history".into(),
        ))))
    }
}

/// A payload from another node that is not a JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPayload(pub(crate) String);

impl fmt::Display for InvalidPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid cluster payload: {}", self.0)
    }
}

impl std::error::Error for InvalidPayload {}

/// Gauges of the cluster as this hub sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemoteStats {
    /// Other nodes known.
    pub nodes: usize,
    /// Connections on them.
    pub users: usize,
}
